package bench

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/worker/langrt"
)

// TestTasksMeasuresFrayAndEveryBarePath runs the task benchmark small:
// every phase must complete (each waits for all its replies) and the
// ratios must be the quotients of the rates they name.
func TestTasksMeasuresFrayAndEveryBarePath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Tasks(ctx, TasksOptions{N: 500, Concurrency: 4, Payload: 16, Sequential: 50, Baseline: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if res.TasksPerS <= 0 || res.BaselineTasksPerS <= 0 || res.FreeSlotsTasksPerS <= 0 || res.SameWorkTasksPerS <= 0 {
		t.Fatalf("a rate is missing: %+v", res)
	}
	if res.CPUUSPerTask <= 0 || res.BaselineCPUUS <= 0 || res.FreeSlotsCPUUS <= 0 || res.SameWorkCPUUS <= 0 {
		t.Fatalf("a CPU figure is missing: %+v", res)
	}
	if res.P50MS <= 0 || res.P99MS < res.P50MS {
		t.Fatalf("latency p50 %.3f ms, p99 %.3f ms", res.P50MS, res.P99MS)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, b) }
	if !near(res.Ratio, res.TasksPerS/res.BaselineTasksPerS) || !near(res.FreeSlotsRatio, res.TasksPerS/res.FreeSlotsTasksPerS) ||
		!near(res.SameWorkRatio, res.TasksPerS/res.SameWorkTasksPerS) {
		t.Fatalf("ratios do not match the rates: %+v", res)
	}
}

func TestTasksRefusesBadOptions(t *testing.T) {
	for _, o := range []TasksOptions{{N: 0, Concurrency: 1}, {N: 1, Concurrency: 0}, {N: 1, Concurrency: 1, Payload: -1}} {
		if _, err := Tasks(context.Background(), o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

// TestTasksRunsTheNoopInPython runs the benchmark small with the Python
// runtime: every task must come back from a Python process.
func TestTasksRunsTheNoopInPython(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	py, paths := frayt.Python(t)
	o := langrt.Python(py, paths[:1], nil)
	res, err := Tasks(ctx, TasksOptions{N: 200, Concurrency: 2, Sequential: 20, StoreDir: t.TempDir(), Python: &o})
	if err != nil {
		t.Fatal(err)
	}
	if res.TasksPerS <= 0 || res.P50MS <= 0 {
		t.Fatalf("rates missing: %+v", res)
	}
}
