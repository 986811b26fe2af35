package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// WorkerOptions describes the worker the metrics are of.
type WorkerOptions struct {
	// Pool labels the slot gauges.
	Pool string
	// Slots reports the worker's task slots; Busy the slots running a task
	// now; Held the prefetched tasks waiting for a slot; Processes the job
	// processes running now. Any may be nil (0).
	Slots, Busy, Held, Processes func() int
}

// Worker is a worker's metrics. It implements worker.Observer: the
// executor calls it once per task event, so each call is a lock-free map
// lookup and an atomic add, without allocating once a function was seen.
type Worker struct {
	started   *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	queueWait *prometheus.HistogramVec
	failures  *prometheus.CounterVec
	retries   *prometheus.CounterVec
	lease     prometheus.Counter

	fns   bounded
	perFn sync.Map // fn → *fnMetrics
}

// fnMetrics are one function's metrics, resolved once.
type fnMetrics struct {
	started   prometheus.Counter
	duration  prometheus.Observer
	queueWait prometheus.Observer
	kinds     sync.Map // kind → *kindMetrics
}

type kindMetrics struct{ failures, retries prometheus.Counter }

// Buckets of the task histograms, in seconds: 100 µs to 5 minutes.
var taskBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// NewWorker registers a worker's metrics on reg.
func NewWorker(reg prometheus.Registerer, o WorkerOptions) *Worker {
	w := &Worker{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fray_worker_tasks_started_total",
			Help: "Task attempts this worker started, by function."}, []string{"fn"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fray_worker_task_duration_seconds",
			Help: "Run time of the task attempts this worker ran to an end (a result, or a failure to be retried), by function.", Buckets: taskBuckets}, []string{"fn"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fray_worker_task_queue_wait_seconds",
			Help: "Time from submission to start of the task attempts this worker started, by function.", Buckets: taskBuckets}, []string{"fn"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fray_worker_task_failures_total",
			Help: "Task attempts this worker finished with an error result, by function and error kind."}, []string{"fn", "kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fray_worker_task_retries_total",
			Help: "Task attempts that failed on this worker and were scheduled to run again, by function and error kind."}, []string{"fn", "kind"}),
		lease: prometheus.NewCounter(prometheus.CounterOpts{Name: "fray_worker_lease_renewal_failures_total",
			Help: "Failed renewals of this worker's registry lease."}),
	}
	reg.MustRegister(w.started, w.duration, w.queueWait, w.failures, w.retries, w.lease)
	pool := prometheus.Labels{"pool": o.Pool}
	reg.MustRegister(
		gaugeFunc("fray_worker_slots", "Task slots of this worker.", pool, o.Slots),
		gaugeFunc("fray_worker_slots_busy", "Task slots of this worker running a task now.", pool, o.Busy),
		gaugeFunc("fray_worker_tasks_held", "Tasks this worker prefetched, waiting for a slot now.", pool, o.Held),
		gaugeFunc("fray_worker_job_processes", "Job processes this worker runs now.", nil, o.Processes))
	return w
}

func gaugeFunc(name, help string, labels prometheus.Labels, f func() int) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, func() float64 {
		if f == nil {
			return 0
		}
		return float64(f())
	})
}

func (w *Worker) fn(fn string) *fnMetrics {
	if m, ok := w.perFn.Load(fn); ok {
		return m.(*fnMetrics)
	}
	l := w.fns.value(fn)
	m := &fnMetrics{started: w.started.WithLabelValues(l), duration: w.duration.WithLabelValues(l), queueWait: w.queueWait.WithLabelValues(l)}
	got, _ := w.perFn.LoadOrStore(fn, m)
	return got.(*fnMetrics)
}

func (w *Worker) kind(m *fnMetrics, fn, kind string) *kindMetrics {
	if k, ok := m.kinds.Load(kind); ok {
		return k.(*kindMetrics)
	}
	l, kl := w.fns.value(fn), kindLabel(kind)
	k := &kindMetrics{failures: w.failures.WithLabelValues(l, kl), retries: w.retries.WithLabelValues(l, kl)}
	got, _ := m.kinds.LoadOrStore(kind, k)
	return got.(*kindMetrics)
}

// TaskStarted implements tasks.Observer.
func (w *Worker) TaskStarted(fn string, queued time.Duration) {
	m := w.fn(fn)
	m.started.Inc()
	m.queueWait.Observe(queued.Seconds())
}

// TaskFinished implements tasks.Observer.
func (w *Worker) TaskFinished(fn string, ran time.Duration, kind string) {
	m := w.fn(fn)
	m.duration.Observe(ran.Seconds())
	if kind != "" {
		w.kind(m, fn, kind).failures.Inc()
	}
}

// TaskRetried implements tasks.Observer.
func (w *Worker) TaskRetried(fn string, ran time.Duration, kind string) {
	m := w.fn(fn)
	m.duration.Observe(ran.Seconds())
	w.kind(m, fn, kind).retries.Inc()
}

// LeaseRenewFailed implements worker.Observer.
func (w *Worker) LeaseRenewFailed() { w.lease.Inc() }

// errorKinds are the ErrorInfo kinds a label may take; others are "other".
var errorKinds = map[string]bool{"handler": true, "panic": true, "timeout": true, "cancelled": true,
	"unknown_function": true, "bad_input": true, "exhausted": true, "object": true}

func kindLabel(kind string) string {
	if errorKinds[kind] {
		return kind
	}
	return otherLabel
}
