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
	checkBrokerCounts(t, res)
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, b) }
	if !near(res.Ratio, res.TasksPerS/res.BaselineTasksPerS) || !near(res.FreeSlotsRatio, res.TasksPerS/res.FreeSlotsTasksPerS) ||
		!near(res.SameWorkRatio, res.TasksPerS/res.SameWorkTasksPerS) {
		t.Fatalf("ratios do not match the rates: %+v", res)
	}
}

// TestTasksPairsRoundsWithTheSameWorkPath runs the benchmark small in
// rounds: one fray/same-work ratio per round, the reported ratio their
// median, and every rate there.
func TestTasksPairsRoundsWithTheSameWorkPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Tasks(ctx, TasksOptions{N: 300, Concurrency: 4, Sequential: 20, Baseline: true, Rounds: 3, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rounds != 3 || len(res.SameWorkRatios) != 3 {
		t.Fatalf("rounds %d, ratios %v: want 3 of each", res.Rounds, res.SameWorkRatios)
	}
	for _, r := range res.SameWorkRatios {
		if r <= 0 {
			t.Fatalf("a round's ratio is %v: %v", r, res.SameWorkRatios)
		}
	}
	checkBrokerCounts(t, res)
	if res.SameWorkRatio != Median(res.SameWorkRatios) {
		t.Fatalf("ratio_same_work %v is not the median of %v", res.SameWorkRatio, res.SameWorkRatios)
	}
	if res.TasksPerS <= 0 || res.SameWorkTasksPerS <= 0 || res.CPUUSPerTask <= 0 || res.SameWorkCPUUS <= 0 ||
		res.BaselineTasksPerS <= 0 || res.FreeSlotsTasksPerS <= 0 {
		t.Fatalf("a rate or CPU figure is missing: %+v", res)
	}
}

// checkBrokerCounts checks the broker's messages per task on both paths:
// each task needs at least seven (the task and its PubAck, its delivery,
// the result, its PubAck and its republished copy, the ack), plus pull
// requests (at most one per task on either path, each asking for at least
// one task), so fray sending one message per task more than the bare path
// doing the same work shows as a difference of about one.
func checkBrokerCounts(t *testing.T, res TasksResult) {
	t.Helper()
	t.Logf("through the broker per task: fray %.2f messages (%.0f bytes), same-work bare path %.2f (%.0f bytes)",
		res.BrokerMsgsPerTask, res.BrokerBytesPerTask, res.SameWorkBrokerMsgs, res.SameWorkBrokerBytes)
	for _, c := range []struct {
		path        string
		msgs, bytes float64
	}{{"fray", res.BrokerMsgsPerTask, res.BrokerBytesPerTask}, {"same-work bare path", res.SameWorkBrokerMsgs, res.SameWorkBrokerBytes}} {
		if c.msgs < 7 || c.bytes <= 0 {
			t.Errorf("%s: %.2f messages (%.0f bytes) per task through the broker: want at least 7 messages", c.path, c.msgs, c.bytes)
		}
	}
	if extra := res.BrokerMsgsPerTask - res.SameWorkBrokerMsgs; extra > 0.9 {
		t.Errorf("fray: %.2f messages per task through the broker, %.2f more than the same-work bare path's %.2f",
			res.BrokerMsgsPerTask, extra, res.SameWorkBrokerMsgs)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		in := append([]float64(nil), c.in...)
		if got := Median(in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Fatalf("Median reordered its input: %v, was %v", in, c.in)
			}
		}
	}
}

func TestTasksRefusesBadOptions(t *testing.T) {
	for _, o := range []TasksOptions{{N: 0, Concurrency: 1}, {N: 1, Concurrency: 0}, {N: 1, Concurrency: 1, Payload: -1},
		{N: 1, Concurrency: 1, Cluster: 2}, {N: 1, Concurrency: 1, Cluster: -1},
		{N: 1, Concurrency: 1, Rounds: 2}, {N: 1, Concurrency: 1, Baseline: true, Rounds: -1}} {
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
