package metrics

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestWorkerObserverDoesNotAllocatePerTask(t *testing.T) {
	w := NewWorker(prometheus.NewRegistry(), WorkerOptions{Pool: "default"})
	w.TaskStarted("fn", time.Millisecond) // the first sight of a function resolves its series
	w.TaskFinished("fn", time.Millisecond, "handler")
	w.TaskRetried("fn", time.Millisecond, "handler")
	allocs := testing.AllocsPerRun(1000, func() {
		w.TaskStarted("fn", time.Millisecond)
		w.TaskFinished("fn", time.Millisecond, "")
		w.TaskFinished("fn", time.Millisecond, "handler")
		w.TaskRetried("fn", time.Millisecond, "handler")
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per task event, want 0", allocs)
	}
}

func TestLabelValuesAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	w := NewWorker(reg, WorkerOptions{Pool: "default"})
	for i := range maxLabelValues + 50 {
		w.TaskStarted(fmt.Sprintf("fn-%d", i), 0)
	}
	w.TaskFinished("fn-0", 0, "no-such-kind")
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var started *dto.MetricFamily
	for _, f := range fams {
		if f.GetName() == "fray_worker_tasks_started_total" {
			started = f
		}
		if f.GetName() == "fray_worker_task_failures_total" {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "kind" && l.GetValue() != otherLabel {
						t.Errorf("unknown error kind labelled %q, want %q", l.GetValue(), otherLabel)
					}
				}
			}
		}
	}
	if started == nil {
		t.Fatal("no fray_worker_tasks_started_total")
	}
	if n := len(started.GetMetric()); n != maxLabelValues+1 {
		t.Fatalf("%d series for %d functions, want %d (the bound plus %q)", n, maxLabelValues+50, maxLabelValues+1, otherLabel)
	}
	for _, m := range started.GetMetric() {
		if m.GetLabel()[0].GetValue() == otherLabel && m.GetCounter().GetValue() != 50 {
			t.Fatalf("%q counts %v, want the 50 functions past the bound", otherLabel, m.GetCounter().GetValue())
		}
	}
}

// BenchmarkWorkerObserverPerTask is what the metrics add to each task: a
// start and a finish.
func BenchmarkWorkerObserverPerTask(b *testing.B) {
	w := NewWorker(prometheus.NewRegistry(), WorkerOptions{Pool: "default"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.TaskStarted("fray.noop", 200*time.Microsecond)
			w.TaskFinished("fray.noop", 50*time.Microsecond, "")
		}
	})
}
