package observe_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/metrics"
	"github.com/frayhq/fray/internal/observe/observetest"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/tasks"
	"github.com/frayhq/fray/worker"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches url and parses the Prometheus text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

// value is the value of the series of family name whose labels include
// want, or -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

// waitFor scrapes until every expectation holds.
func waitFor(t *testing.T, url, what string, want map[string]float64, labels map[string]map[string]string) {
	t.Helper()
	var last map[string]*dto.MetricFamily
	deadline := time.Now().Add(20 * time.Second)
	for {
		last = scrape(t, url)
		ok := true
		for name, v := range want {
			if value(last, name, labels[name]) != v {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for name, v := range want {
				t.Errorf("%s: %s%v = %v, want %v", what, name, labels[name], value(last, name, labels[name]), v)
			}
			t.FailNow()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMetricsFollowTasksJobsAndActors(t *testing.T) {
	ctx := frayt.Context(t, 90*time.Second)
	reg := tasks.NewRegistry()
	if err := worker.RegisterBuiltins(reg); err != nil {
		t.Fatal(err)
	}
	tasks.Register(reg, "ok", func(_ context.Context, n int) (int, error) { return n, nil })
	tasks.Register(reg, "fail", func(_ context.Context, n int) (int, error) { return 0, errors.New("always fails") })
	tasks.Register(reg, "flaky", func(ctx context.Context, n int) (int, error) {
		if ti, _ := tasks.CurrentTask(ctx); ti.Attempt == 1 {
			return 0, tasks.Retryable(errors.New("first attempt fails"))
		}
		return n, nil
	})
	wreg := metrics.NewRegistry()
	wm := metrics.NewWorker(wreg, metrics.WorkerOptions{Pool: tasks.DefaultPool, Slots: func() int { return 2 }})
	wsrv := httptest.NewServer(metrics.Handler(wreg))
	t.Cleanup(wsrv.Close)

	cl := observetest.Start(t, ctx, worker.Options{Concurrency: 2, Registry: reg, Observer: wm})
	url, c := cl.MetricsURL, cl.Client
	waitFor(t, url, "before any task", map[string]float64{"fray_workers_live": 1, "fray_workers_slots": 2},
		map[string]map[string]string{"fray_workers_live": {"pool": "default"}, "fray_workers_slots": {"pool": "default"}})
	if fams := scrape(t, url); fams["process_cpu_seconds_total"] == nil || fams["go_goroutines"] == nil {
		t.Fatalf("no Go runtime or process collector in the broker's metrics")
	}

	for i := range 3 {
		if _, err := c.Run(ctx, "ok", i).Result(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Run(ctx, "fail", 1).Get(ctx, new(int)); err == nil {
		t.Fatal("fail succeeded")
	}
	if err := c.Run(ctx, "flaky", 1, tasks.Retries(2, time.Millisecond)).Get(ctx, new(int)); err != nil {
		t.Fatalf("flaky: %v", err)
	}
	okL, failL, flakyL := map[string]string{"fn": "ok"}, map[string]string{"fn": "fail", "kind": "handler"}, map[string]string{"fn": "flaky"}
	waitFor(t, url, "broker after tasks", map[string]float64{
		"fray_tasks_submitted_total":    3,
		"fray_tasks_completed_total":    3,
		"fray_tasks_failed_total":       1,
		"fray_tasks_retries_total":      1,
		"fray_tasks_run_seconds":        3,
		"fray_tasks_queue_wait_seconds": 5,
	}, map[string]map[string]string{
		"fray_tasks_submitted_total": okL, "fray_tasks_completed_total": okL, "fray_tasks_failed_total": failL,
		"fray_tasks_retries_total": flakyL, "fray_tasks_run_seconds": okL, "fray_tasks_queue_wait_seconds": {"pool": "default"},
	})
	waitFor(t, wsrv.URL+"/metrics", "worker after tasks", map[string]float64{
		"fray_worker_tasks_started_total":   3,
		"fray_worker_task_failures_total":   1,
		"fray_worker_task_retries_total":    1,
		"fray_worker_task_duration_seconds": 2, // flaky: the failed attempt and the one that succeeded
		"fray_worker_slots":                 2,
	}, map[string]map[string]string{
		"fray_worker_tasks_started_total": okL, "fray_worker_task_failures_total": failL,
		"fray_worker_task_retries_total": {"fn": "flaky", "kind": "handler"}, "fray_worker_task_duration_seconds": flakyL,
	})

	// A job: RUNNING while its process runs, then SUCCEEDED.
	h, err := c.Submit(ctx, jobs.JobRequest{Name: "metrics-job", Entrypoint: jobs.Entrypoint{Argv: []string{"sleep", "60"}}})
	if err != nil {
		t.Fatal(err)
	}
	running := map[string]map[string]string{"fray_jobs": {"state": "RUNNING"}}
	waitFor(t, url, "job running", map[string]float64{"fray_jobs": 1}, running)
	waitFor(t, url, "job start latency", map[string]float64{"fray_job_start_latency_seconds": 1}, nil)
	if err := h.Terminate(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, url, "job stopped", map[string]float64{"fray_jobs": 1}, map[string]map[string]string{"fray_jobs": {"state": "STOPPED"}})
	waitFor(t, url, "job no longer running", map[string]float64{"fray_jobs": 0}, running)

	// An actor: ready, calls counted, then stopped.
	a, err := c.CreateActor(ctx, actors.ClassCounter, "metrics-counter", 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := fray.Call[int64](ctx, a, "Add", int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, url, "actor ready", map[string]float64{"fray_actors": 1}, map[string]map[string]string{"fray_actors": {"state": "ready"}})
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, url, "actor stopped", map[string]float64{"fray_actors": 1}, map[string]map[string]string{"fray_actors": {"state": "stopped"}})
	waitFor(t, url, "actor not ready", map[string]float64{"fray_actors": 0}, map[string]map[string]string{"fray_actors": {"state": "ready"}})
}
