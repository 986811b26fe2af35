package metrics

import (
	"strings"

	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/clusterview"
	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// Broker is the cluster's metrics, as a broker serves them. Gauges are read
// from a clusterview.View at scrape time (memory only); counters and
// histograms are fed by the view's hooks (results, job and actor updates)
// and by a subscription to the task subjects.
type Broker struct {
	view *clusterview.View

	submitted, completed, failed, retries *prometheus.CounterVec
	queueWait, runTime                    *prometheus.HistogramVec
	jobStart                              prometheus.Histogram
	actorRestarts, actorCalls             *prometheus.CounterVec
	backendErrors                         *prometheus.CounterVec

	pools, fns, classes bounded
	taskSub             *nats.Subscription
}

// NewBroker makes the cluster's metrics. Pass the view's options through
// Hooks before making the view, then Register with that view.
func NewBroker() *Broker {
	return &Broker{
		submitted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fray_tasks_submitted_total",
			Help: "Tasks published to a pool's subject, by pool and function (hand-ons between workers are not counted)."}, []string{"pool", "fn"}),
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fray_tasks_completed_total",
			Help: "Tasks whose stored result is a value, by pool and function."}, []string{"pool", "fn"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fray_tasks_failed_total",
			Help: "Tasks whose stored result is an error, by pool, function and error kind."}, []string{"pool", "fn", "kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fray_tasks_retries_total",
			Help: "Extra attempts (retries and redeliveries) of the tasks that finished, by pool and function, counted when each task finishes."}, []string{"pool", "fn"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fray_tasks_queue_wait_seconds",
			Help: "Time from a finished task's submission to the start of its last attempt, by pool.", Buckets: taskBuckets}, []string{"pool"}),
		runTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fray_tasks_run_seconds",
			Help: "Run time of a finished task's last attempt, by pool and function.", Buckets: taskBuckets}, []string{"pool", "fn"}),
		jobStart: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fray_job_start_latency_seconds",
			Help:    "Time from a job's submission until its first attempt was placed and running.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600}}),
		actorRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fray_actor_restarts_total",
			Help: "Actor restarts seen since this broker started, by actor class."}, []string{"class"}),
		actorCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fray_actor_calls_total",
			Help: "Actor calls served, by actor class, as hosts report them at each lease renewal (seen since this broker started)."}, []string{"class"}),
		backendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fray_dispatcher_backend_errors_total",
			Help: "Failed calls from this broker's dispatcher to an external job backend (Ray, Iris), by backend and operation."}, []string{"backend", "op"}),
	}
}

// Hooks returns view options with the broker's hooks set.
func (b *Broker) Hooks(o clusterview.Options) clusterview.Options {
	o.OnResult, o.OnJob, o.OnActor = b.onResult, b.onJob, b.onActor
	return o
}

// Register registers the metrics on reg, with gauges read from view.
func (b *Broker) Register(reg prometheus.Registerer, view *clusterview.View) {
	b.view = view
	reg.MustRegister(b.submitted, b.completed, b.failed, b.retries, b.queueWait, b.runTime, b.jobStart,
		b.actorRestarts, b.actorCalls, b.backendErrors, gauges{b})
}

// Subscribe counts submissions on nc (which should be the view's own
// connection) until Close.
func (b *Broker) Subscribe(nc *nats.Conn) error {
	sub, err := nc.Subscribe(broker.SubjectTasksPrefix+"*", b.onTask)
	if err != nil {
		return err
	}
	if err := sub.SetPendingLimits(64<<10, 64<<20); err != nil {
		sub.Unsubscribe()
		return err
	}
	b.taskSub = sub
	return nil
}

// Close ends the task subscription.
func (b *Broker) Close() {
	if b.taskSub != nil {
		b.taskSub.Unsubscribe()
	}
}

// taskFn is the part of a task record the submission counter reads.
type taskFn struct {
	Fn string `cbor:"fn"`
}

func (b *Broker) onTask(m *nats.Msg) {
	if m.Header.Get(taskwire.HeaderPriorDeliveries) != "" {
		return // a worker handing the task on, not a submission
	}
	var t taskFn
	if objects.Unmarshal(m.Data, &t) != nil {
		t.Fn = ""
	}
	pool := strings.TrimPrefix(m.Subject, broker.SubjectTasksPrefix)
	b.submitted.WithLabelValues(b.pools.value(pool), b.fns.value(t.Fn)).Inc()
}

func (b *Broker) onResult(r *clusterview.Result) {
	if r.Pool == "" {
		return // written by a canceller, not a worker: no attempt ran
	}
	pool, fn := b.pools.value(r.Pool), b.fns.value(r.Fn)
	if r.Error != nil {
		b.failed.WithLabelValues(pool, fn, kindLabel(r.Error.Kind)).Inc()
	} else {
		b.completed.WithLabelValues(pool, fn).Inc()
	}
	if r.Attempt > 1 {
		b.retries.WithLabelValues(pool, fn).Add(float64(r.Attempt - 1))
	}
	if r.StartedMS > 0 && r.SubmittedMS > 0 {
		b.queueWait.WithLabelValues(pool).Observe(max(0, float64(r.StartedMS-r.SubmittedMS)/1000))
	}
	if r.StartedMS > 0 && r.FinishedMS >= r.StartedMS {
		b.runTime.WithLabelValues(pool, fn).Observe(float64(r.FinishedMS-r.StartedMS) / 1000)
	}
}

func (b *Broker) onJob(prev, cur *jobs.Record) {
	firstRun := cur.Status == jobs.StatusRunning && cur.Attempt == 0 && cur.StartedMS > 0 &&
		(prev == nil || prev.Status != jobs.StatusRunning)
	if firstRun && cur.SubmittedMS > 0 {
		b.jobStart.Observe(max(0, float64(cur.StartedMS-cur.SubmittedMS)/1000))
	}
}

func (b *Broker) onActor(prev, cur *actors.Record) {
	class := b.classes.value(cur.Class)
	if prev == nil {
		if cur.Restarts > 0 {
			b.actorRestarts.WithLabelValues(class).Add(float64(cur.Restarts))
		}
		b.actorCalls.WithLabelValues(class).Add(float64(cur.Calls))
		return
	}
	if cur.Restarts > prev.Restarts {
		b.actorRestarts.WithLabelValues(class).Add(float64(cur.Restarts - prev.Restarts))
	}
	switch {
	case cur.Epoch != prev.Epoch:
		b.actorCalls.WithLabelValues(class).Add(float64(cur.Calls)) // a new instance counts from 0
	case cur.Calls > prev.Calls:
		b.actorCalls.WithLabelValues(class).Add(float64(cur.Calls - prev.Calls))
	}
}

// gauges collects the gauges from the view at scrape time.
type gauges struct{ b *Broker }

var (
	descQueued      = prometheus.NewDesc("fray_tasks_queued", "Tasks waiting in a pool's queue for a worker.", []string{"pool"}, nil)
	descRunning     = prometheus.NewDesc("fray_tasks_running", "Tasks of a pool delivered to a worker and not yet acknowledged (running, prefetched and waiting for a slot, or held by a dead worker until their lease lapses).", []string{"pool"}, nil)
	descRedelivered = prometheus.NewDesc("fray_tasks_redelivered", "Tasks of a pool delivered more than once and not yet done.", []string{"pool"}, nil)
	descWorkers     = prometheus.NewDesc("fray_workers_live", "Live workers (registered, lease current) of a pool.", []string{"pool"}, nil)
	descSlots       = prometheus.NewDesc("fray_workers_slots", "Task slots of a pool's live workers.", []string{"pool"}, nil)
	descBusy        = prometheus.NewDesc("fray_workers_slots_busy", "Task slots of a pool's live workers running a task, as they last reported.", []string{"pool"}, nil)
	descJobs        = prometheus.NewDesc("fray_jobs", "Jobs by state (records in FRAY_JOB_STATE).", []string{"state"}, nil)
	descActors      = prometheus.NewDesc("fray_actors", "Named actors by state (records in FRAY_ACTORS).", []string{"state"}, nil)
	descUnreachable = prometheus.NewDesc("fray_dispatcher_backends_unreachable", "External backends that some unfinished job's status polls cannot reach now (1 per backend).", []string{"backend"}, nil)
	descStreamMsgs  = prometheus.NewDesc("fray_stream_messages", "Messages stored in a JetStream stream (KV buckets are KV_<name>, the object store OBJ_<name>).", []string{"stream"}, nil)
	descStreamBytes = prometheus.NewDesc("fray_stream_bytes", "Bytes stored in a JetStream stream.", []string{"stream"}, nil)
	descDropped     = prometheus.NewDesc("fray_metrics_results_dropped_total", "Stored results the metrics' subscription dropped because it fell behind (the result counters miss them).", nil, nil)
	descPollOK      = prometheus.NewDesc("fray_metrics_poll_ok", "1 when the last poll of the pool consumers and streams succeeded, else 0 (the gauges then show the last good numbers).", nil, nil)
)

// jobStates and actorStates are always exported, 0 included.
var (
	jobStates   = []jobs.JobStatus{jobs.StatusPending, jobs.StatusRunning, jobs.StatusSucceeded, jobs.StatusFailed, jobs.StatusStopped}
	actorStates = []string{actors.StatePlacing, actors.StateReady, actors.StateFailed, actors.StateRestarting, actors.StateStopped, actors.StateDead}
)

func (g gauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueued, descRunning, descRedelivered, descWorkers, descSlots, descBusy,
		descJobs, descActors, descUnreachable, descStreamMsgs, descStreamBytes, descDropped, descPollOK} {
		ch <- d
	}
}

func (g gauges) Collect(ch chan<- prometheus.Metric) {
	v := g.b.view
	gauge := func(d *prometheus.Desc, val float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, val, labels...)
	}
	for _, p := range v.Pools() {
		pool := g.b.pools.value(p.Name)
		gauge(descQueued, float64(p.Queued), pool)
		gauge(descRunning, float64(p.Running), pool)
		gauge(descRedelivered, float64(p.Redelivered), pool)
		gauge(descWorkers, float64(p.Workers), pool)
		gauge(descSlots, float64(p.Slots), pool)
		gauge(descBusy, float64(p.Busy), pool)
	}
	byJob := v.JobsByState()
	for _, s := range jobStates {
		gauge(descJobs, float64(byJob[s]), string(s))
	}
	byActor := v.ActorsByState()
	for _, s := range actorStates {
		gauge(descActors, float64(byActor[s]), s)
	}
	for _, be := range v.UnreachableBackends() {
		gauge(descUnreachable, 1, be)
	}
	for _, s := range v.Streams() {
		gauge(descStreamMsgs, float64(s.Messages), s.Name)
		gauge(descStreamBytes, float64(s.Bytes), s.Name)
	}
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(v.Dropped()))
	ok := 1.0
	if v.PollError() != "" {
		ok = 0
	}
	gauge(descPollOK, ok)
}
