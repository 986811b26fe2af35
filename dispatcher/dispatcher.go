package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BackendNative is the name of fray's own workers as a backend.
const BackendNative = "native"

// Options configures a Dispatcher. Every field has a default.
type Options struct {
	// Backends are the external backends (Ray, Iris) jobs may target by
	// ResourceConfig.TargetCluster. Names must be unique and not "native".
	Backends []Backend
	// DefaultBackend runs jobs that name no TargetCluster. Defaults to
	// "native" (fray workers).
	DefaultBackend string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// PollInterval is how often external jobs' status and logs are polled.
	// Defaults to 1 s.
	PollInterval time.Duration
	// StartupGrace is how long after start a job that no live worker can
	// run stays PENDING (workers may still be registering) before it
	// fails. Defaults to 10 s.
	StartupGrace time.Duration
	// ReconcileInterval is how often records and allocations are checked
	// against each other and against the live workers. Defaults to 5 s.
	ReconcileInterval time.Duration
	// ExpiryGrace is how long, after a worker's lease key expired, the
	// dispatcher waits for the same worker process to take it back (a
	// stream leader election in a cluster can outlast a lease) before it
	// declares the worker lost and preempts its jobs. Nothing is placed on
	// the worker meanwhile. A worker that deregistered is gone at once.
	// Defaults to broker.ExpiryGrace.
	ExpiryGrace time.Duration
	// StopWait bounds how long, after a job on an external backend was
	// ended on fray's side by another writer (a stop does not end it: its
	// backend's report does), its logs are still mirrored while waiting for
	// the backend to report it finished, so what it prints while shutting
	// down is kept. Defaults to 30 s.
	StopWait time.Duration
	// StartTimeout bounds how long a task may stay ASSIGNED, its worker's
	// job runner not having reported it started, before the dispatcher
	// takes the assignment back, places the job again (not counted as a
	// preemption) and places nothing more on that worker process: a worker
	// that advertises job capacity without a runner (an older fray) would
	// otherwise hold the job forever. It must exceed the runners'
	// DeviceWait. Defaults to 2 min.
	StartTimeout time.Duration
}

// Dispatcher places submitted jobs on fray workers or external backends and
// keeps their records. Several may run against one cluster: every write is
// a compare-and-set, so they never double-book a worker.
type Dispatcher struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	o        Options
	log      *slog.Logger
	backends map[string]Backend
	// ready is closed once Run serves submits, finds and events.
	ready     chan struct{}
	readyOnce sync.Once

	// Set up by Run.
	store   *jobs.Store
	workers jetstream.KeyValue
	started time.Time

	// Loop state, touched only by the loop goroutine.
	live     map[string]*broker.WorkerInfo // by worker id
	keyToID  map[string]string             // FRAY_WORKERS key → worker id
	allocs   map[string]*allocEntry        // by worker id
	recs     map[string]*recEntry          // by job id
	mirrors  map[string]context.CancelFunc // external jobs being mirrored
	dirty    bool
	finished []string // jobs finished by another writer, to clean up after
	// stopping holds workers whose runner reported a preempted exit: they
	// are draining even if their registry record does not say so yet.
	stopping map[string]int64 // worker id → its record's StartedMS
	// expiring holds live workers whose lease key expired, until their
	// grace ends (see Options.ExpiryGrace).
	expiring map[string]time.Time // worker id → end of its grace

	// importing holds the ids of jobs found on a backend whose lines are
	// being copied (off the loop): no mirror may start for them meanwhile.
	importing sync.Map
	// silent holds workers that left an assignment unstarted past
	// StartTimeout: nothing more is placed on that process.
	silent map[string]int64 // worker id → its record's StartedMS
}

type recEntry struct {
	r   *jobs.Record
	rev uint64
}

type allocEntry struct {
	a   jobwire.Allocation
	rev uint64 // 0: no key (or deleted)
}

// New validates o and makes a dispatcher; Run starts it.
func New(nc *nats.Conn, js jetstream.JetStream, o Options) (*Dispatcher, error) {
	if nc == nil || js == nil {
		return nil, errors.New("dispatcher: nil connection")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.StartupGrace <= 0 {
		o.StartupGrace = 10 * time.Second
	}
	if o.ReconcileInterval <= 0 {
		o.ReconcileInterval = 5 * time.Second
	}
	if o.StopWait <= 0 {
		o.StopWait = DefaultStopWait
	}
	if o.ExpiryGrace <= 0 {
		o.ExpiryGrace = broker.ExpiryGrace
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	bs := map[string]Backend{}
	for _, b := range o.Backends {
		name := b.Name()
		if name == "" || name == BackendNative {
			return nil, fmt.Errorf("dispatcher: backend name %q is reserved or empty", name)
		}
		if bs[name] != nil {
			return nil, fmt.Errorf("dispatcher: two backends named %q", name)
		}
		bs[name] = b
	}
	if o.DefaultBackend == "" {
		o.DefaultBackend = BackendNative
	}
	if o.DefaultBackend != BackendNative && bs[o.DefaultBackend] == nil {
		return nil, fmt.Errorf("dispatcher: default backend %q is not configured (have: %s)", o.DefaultBackend, strings.Join(backendNames(bs), ", "))
	}
	return &Dispatcher{nc: nc, js: js, o: o, log: o.Logger.With("component", "dispatcher"), backends: bs, ready: make(chan struct{})}, nil
}

// Ready is closed once Run answers submits and look-ups (its state is
// replayed and its subscriptions are in place): a client asking from then
// on gets an answer, never "no responders". A process that starts a
// dispatcher says it is ready only after this.
func (d *Dispatcher) Ready() <-chan struct{} { return d.ready }

func backendNames(bs map[string]Backend) []string {
	out := []string{BackendNative}
	for n := range bs {
		out = append(out, n)
	}
	return out
}

type submitMsg struct{ m *nats.Msg }

// Run serves until ctx ends and returns nil then, or an error when the
// cluster cannot be reached at start.
func (d *Dispatcher) Run(ctx context.Context) error {
	if err := d.open(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ww, err := d.workers.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("dispatcher: watch workers: %w", err)
	}
	defer ww.Stop()
	sw, err := d.store.KV.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("dispatcher: watch job state: %w", err)
	}
	defer sw.Stop()
	if err := d.replay(ctx, ww, sw); err != nil || ctx.Err() != nil {
		return err
	}
	submits, stopSubmits, err := d.takeSubmits(ctx)
	if err != nil {
		return err
	}
	defer stopSubmits()
	found, stopFinds, err := d.takeFinds(ctx)
	if err != nil {
		return err
	}
	defer stopFinds()
	events, stopEvents, err := d.takeEvents(ctx)
	if err != nil {
		return err
	}
	defer stopEvents()
	d.log.Info("dispatcher running", "backends", backendNames(d.backends), "default", d.o.DefaultBackend)
	// The server has our subscriptions once it answers a ping: only then
	// may a client on another connection count on an answer.
	fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
	err = d.nc.FlushWithContext(fctx)
	fcancel()
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dispatcher: flush subscriptions: %w", err)
	}
	d.readyOnce.Do(func() { close(d.ready) })
	return d.loop(ctx, ww, sw, submits, found, events)
}

// open opens the buckets and resets the loop state.
func (d *Dispatcher) open(ctx context.Context) error {
	var err error
	if d.store, err = jobs.OpenStore(ctx, d.js); err != nil {
		return err
	}
	if d.workers, err = d.js.KeyValue(ctx, broker.BucketWorkers); err != nil {
		return fmt.Errorf("dispatcher: open %s: %w", broker.BucketWorkers, err)
	}
	d.started = time.Now()
	d.live = map[string]*broker.WorkerInfo{}
	d.keyToID = map[string]string{}
	d.allocs = map[string]*allocEntry{}
	d.recs = map[string]*recEntry{}
	d.mirrors = map[string]context.CancelFunc{}
	d.stopping = map[string]int64{}
	d.expiring = map[string]time.Time{}
	d.silent = map[string]int64{}
	return nil
}

// replay applies the initial state: everything up to the watchers'
// end-of-replay markers. It returns nil with ctx ended when stopped.
func (d *Dispatcher) replay(ctx context.Context, ww, sw jetstream.KeyWatcher) error {
	for _, w := range []jetstream.KeyWatcher{ww, sw} {
	replay:
		for {
			select {
			case <-ctx.Done():
				return nil
			case e, ok := <-w.Updates():
				if !ok {
					if ctx.Err() != nil {
						return nil // closed because we are stopping
					}
					return errors.New("dispatcher: watcher closed")
				}
				if e == nil {
					break replay
				}
				if w == ww {
					d.onWorker(ctx, e, true)
				} else {
					d.onState(e)
				}
			}
		}
	}
	return nil
}

// takeSubmits subscribes to submit requests; stop unsubscribes and turns
// away those already queued.
func (d *Dispatcher) takeSubmits(ctx context.Context) (submits chan submitMsg, stop func(), err error) {
	submits = make(chan submitMsg, 64)
	unavailable := &jobs.SubmitReply{Code: jobwire.CodeUnavailable, Error: "dispatcher stopping"}
	sub, err := d.nc.QueueSubscribe(jobwire.SubjectSubmit, jobwire.QueueDispatchers, func(m *nats.Msg) {
		d.adoptLive(ctx, m.Data) // a backend call: here, not in the loop
		select {
		case submits <- submitMsg{m}:
		case <-ctx.Done():
			reply(m, unavailable) // the client records the job itself
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("dispatcher: subscribe %s: %w", jobwire.SubjectSubmit, err)
	}
	stop = func() {
		// Stop taking submits before anything else, then turn away those
		// already queued: their clients record the jobs themselves.
		_ = sub.Unsubscribe()
		_ = d.nc.Flush()
		for {
			select {
			case s := <-submits:
				reply(s.m, unavailable)
			default:
				return
			}
		}
	}
	return submits, stop, nil
}

// takeFinds serves the backend lookups (find, backends); the ids of the jobs
// a find imported reach the loop on found.
func (d *Dispatcher) takeFinds(ctx context.Context) (found chan string, stop func(), err error) {
	found = make(chan string, 64)
	var subs []*nats.Subscription
	stop = func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}
	for subj, h := range map[string]nats.MsgHandler{
		jobwire.SubjectFind:     func(m *nats.Msg) { d.onFind(ctx, m, found) },
		jobwire.SubjectBackends: d.onBackends,
	} {
		s, err := d.nc.QueueSubscribe(subj, jobwire.QueueDispatchers, h)
		if err != nil {
			stop()
			return nil, nil, fmt.Errorf("dispatcher: subscribe %s: %w", subj, err)
		}
		subs = append(subs, s)
	}
	return found, stop, nil
}

// takeEvents consumes task events and job control messages from FRAY_JOBS.
func (d *Dispatcher) takeEvents(ctx context.Context) (events chan jetstream.Msg, stop func(), err error) {
	cons, err := d.js.CreateOrUpdateConsumer(ctx, broker.StreamJobs, jetstream.ConsumerConfig{
		Durable:        jobwire.DurableDispatcher,
		Description:    "fray dispatchers: task events and job control",
		FilterSubjects: []string{jobwire.SubjectEventsPrefix + ">", jobwire.SubjectControlPrefix + ">"},
		AckPolicy:      jetstream.AckExplicitPolicy,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckWait:        30 * time.Second,
		MaxAckPending:  4096,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("dispatcher: consumer on %s: %w", broker.StreamJobs, err)
	}
	events = make(chan jetstream.Msg, 256)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case events <- m:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(256))
	if err != nil {
		return nil, nil, fmt.Errorf("dispatcher: consume %s: %w", broker.StreamJobs, err)
	}
	return events, cc.Stop, nil
}

// loop is the dispatcher's one goroutine over its state: it applies
// worker and job changes, submits and events, and places, reconciles and
// times jobs out on a tick, until ctx ends.
func (d *Dispatcher) loop(ctx context.Context, ww, sw jetstream.KeyWatcher, submits <-chan submitMsg, found <-chan string, events <-chan jetstream.Msg) error {
	d.reconcile(ctx)
	d.placeAll(ctx)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastReconcile, lastPlace := time.Now(), time.Now()
	for {
		select {
		case <-ctx.Done():
			d.stopMirrors()
			return nil
		case e, ok := <-ww.Updates():
			if !ok {
				if ctx.Err() != nil {
					d.stopMirrors()
					return nil // closed because we are stopping
				}
				return errors.New("dispatcher: worker watcher closed")
			}
			if e != nil {
				d.onWorker(ctx, e, false)
			}
		case e, ok := <-sw.Updates():
			if !ok {
				if ctx.Err() != nil {
					d.stopMirrors()
					return nil // closed because we are stopping
				}
				return errors.New("dispatcher: job state watcher closed")
			}
			if e != nil {
				d.onState(e)
			}
		case s := <-submits:
			d.onSubmit(ctx, s.m)
		case id := <-found:
			d.onFound(ctx, id)
		case m := <-events:
			d.onEvent(ctx, m)
			_ = m.Ack()
		case now := <-tick.C:
			d.checkExpiring(ctx, now)
			d.checkTimeouts(ctx)
			d.checkStarts(ctx)
			if now.Sub(lastReconcile) >= d.o.ReconcileInterval {
				lastReconcile = now
				d.reconcile(ctx)
			}
			if d.dirty || now.Sub(lastPlace) >= time.Second {
				lastPlace = now
				d.placeAll(ctx)
			}
		}
		for len(d.finished) > 0 {
			id := d.finished[0]
			d.finished = d.finished[1:]
			d.afterFinish(ctx, id)
		}
		if d.dirty {
			d.placeAll(ctx)
		}
	}
}

// onWorker applies a FRAY_WORKERS change.
func (d *Dispatcher) onWorker(ctx context.Context, e jetstream.KeyValueEntry, initial bool) {
	if e.Operation() != jetstream.KeyValuePut {
		id, ok := d.keyToID[e.Key()]
		if !ok {
			return
		}
		if !initial && e.Operation() == jetstream.KeyValuePurge {
			// Its lease expired: the worker may be dead, or may not have
			// reached the stream while it elected a leader. Wait for it to
			// take the key back before preempting anything.
			if _, waiting := d.expiring[id]; !waiting {
				d.expiring[id] = time.Now().Add(d.o.ExpiryGrace)
				d.log.Info("worker lease expired; waiting for it to renew", "worker", id, "grace", d.o.ExpiryGrace)
			}
			return
		}
		d.forgetWorker(e.Key(), id)
		if !initial {
			d.log.Info("worker left", "worker", id) // it deregistered on a clean stop
			d.workerLost(ctx, id)
		}
		return
	}
	var w broker.WorkerInfo
	if err := objects.Unmarshal(e.Value(), &w); err != nil || w.ID == "" {
		return
	}
	if _, waiting := d.expiring[w.ID]; waiting {
		delete(d.expiring, w.ID)
		if old := d.live[w.ID]; old != nil && old.StartedMS != w.StartedMS {
			// Another process under the same id: the expired one is dead.
			d.log.Warn("worker lost", "worker", w.ID, "reason", "lease expired; a new process took its id")
			d.forgetWorker(e.Key(), w.ID)
			d.workerLost(ctx, w.ID)
		} else {
			d.log.Info("worker renewed its expired lease; not lost", "worker", w.ID)
		}
	}
	if _, known := d.live[w.ID]; !known {
		d.dirty = true
	}
	if old := d.live[w.ID]; old != nil && old.Draining != w.Draining {
		d.dirty = true
	}
	if started, ok := d.stopping[w.ID]; ok {
		if started == w.StartedMS {
			w.Draining = true
		} else {
			delete(d.stopping, w.ID) // a new process under the same id
		}
	}
	if started, ok := d.silent[w.ID]; ok && started != w.StartedMS {
		delete(d.silent, w.ID) // a new process under the same id
		d.dirty = true
	}
	d.keyToID[e.Key()] = w.ID
	d.live[w.ID] = &w
}

// forgetWorker drops a worker from the live set.
func (d *Dispatcher) forgetWorker(key, id string) {
	delete(d.keyToID, key)
	delete(d.live, id)
	delete(d.stopping, id)
	delete(d.silent, id)
	delete(d.expiring, id)
}

// checkExpiring declares lost the workers whose grace after a lease expiry
// ended without their renewal.
func (d *Dispatcher) checkExpiring(ctx context.Context, now time.Time) {
	for id, until := range d.expiring {
		if now.Before(until) {
			continue
		}
		for key, kid := range d.keyToID {
			if kid == id {
				d.forgetWorker(key, id)
			}
		}
		delete(d.expiring, id)
		delete(d.live, id)
		d.log.Warn("worker lost", "worker", id, "reason", "lease expired")
		d.workerLost(ctx, id)
	}
}

// onState applies a FRAY_JOB_STATE change seen by the watcher.
func (d *Dispatcher) onState(e jetstream.KeyValueEntry) {
	key := e.Key()
	switch {
	case strings.HasPrefix(key, jobwire.KeyJobPrefix):
		id := jobwire.IDFromToken(strings.TrimPrefix(key, jobwire.KeyJobPrefix))
		if e.Operation() != jetstream.KeyValuePut {
			delete(d.recs, id)
			return
		}
		if cur := d.recs[id]; cur != nil && cur.rev >= e.Revision() {
			return
		}
		r, err := jobs.DecodeRecord(e.Value())
		if err != nil {
			d.log.Error("bad job record", "key", key, "err", err)
			return
		}
		if cur := d.recs[id]; cur != nil && !cur.r.Status.Terminal() && r.Status.Terminal() {
			d.finished = append(d.finished, id)
		}
		d.recs[id] = &recEntry{r, e.Revision()}
		if r.Status == jobs.StatusPending {
			d.dirty = true
		}
	case strings.HasPrefix(key, jobwire.KeyAllocPrefix):
		var a jobwire.Allocation
		if e.Operation() == jetstream.KeyValuePut {
			if err := objects.Unmarshal(e.Value(), &a); err != nil {
				return
			}
		} else {
			d.dirty = true
		}
		worker := a.Worker
		if worker == "" {
			// A deleted key: find the worker by its token.
			tok := strings.TrimPrefix(key, jobwire.KeyAllocPrefix)
			for id := range d.allocs {
				if jobwire.WorkerToken(id) == tok {
					worker = id
				}
			}
			if worker == "" {
				return
			}
		}
		if cur := d.allocs[worker]; cur != nil && cur.rev >= e.Revision() {
			return
		}
		rev := e.Revision()
		d.allocs[worker] = &allocEntry{a: a, rev: rev}
		if e.Operation() != jetstream.KeyValuePut {
			d.allocs[worker].a = jobwire.Allocation{Worker: worker}
		}
	}
}

func (d *Dispatcher) stopMirrors() {
	for id, cancel := range d.mirrors {
		cancel()
		delete(d.mirrors, id)
	}
}

// reply answers a submit request.
func reply(m *nats.Msg, rep *jobs.SubmitReply) {
	rep.V = jobwire.WireVersion
	b, err := objects.Marshal(rep)
	if err != nil {
		return
	}
	_ = m.Respond(b)
}
