package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/registry"
	"github.com/frayhq/fray/tasks"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/run"
)

// Options configures a worker. Every field has a documented default.
type Options struct {
	// ID names the worker. Defaults to "<host>-<random>". A worker
	// whose credentials fix its id (a `fray auth init` worker user) gets
	// it from Identify.
	ID string
	// Pool is the pool whose tasks the worker serves. Defaults to "default".
	Pool string
	// Concurrency is the number of task slots. Defaults to GOMAXPROCS.
	Concurrency int
	// Prefetch is the most tasks held beyond the slots while tasks are
	// short (see tasks.ExecutorOptions). Defaults to 0; fray-worker sets
	// DefaultPrefetch.
	Prefetch int
	// Attributes describe the host for placement (region, zone,
	// preemptible, tpu-name, device-variant, ...).
	Attributes map[string]string
	// Registry holds the task handlers. Defaults to one with the built-ins.
	Registry *tasks.Registry
	// AckWait is the task lease (see tasks.ExecutorOptions). Defaults to 30 s.
	AckWait time.Duration
	// DrainTimeout bounds how long running tasks may finish on shutdown
	// before they are handed back. Defaults to 30 s.
	DrainTimeout time.Duration
	// LeaseTTL is the lifetime of the worker's registry entry without
	// renewal; it is renewed every LeaseTTL/3. Defaults to 6 s.
	LeaseTTL time.Duration
	// Plugins run beside the task executor: the actor host, the job runner.
	Plugins []Plugin
	// Actors, when set, hosts the registry's actor classes on this worker:
	// New adds an actors.Host with default options to Plugins. Defaults to
	// none.
	Actors *actors.Registry
	// Jobs, when set, runs native job replicas on this worker: New adds a
	// jobs.Runner with these options to Plugins. Only a worker with a job
	// runner offers job capacity to the dispatcher; defaults to nil, a
	// worker that is never given jobs.
	Jobs *jobs.RunnerOptions
	// InlineThreshold is the size above which results go to the object
	// store. Defaults to objects.DefaultInlineThreshold.
	InlineThreshold int
	// Objects is the object store for large arguments and results
	// (InlineThreshold is then the store's). Defaults to one opened on the
	// worker's connection; fray-worker passes its client's.
	Objects *objects.Store
	// HandlerContext derives each task handler's context.
	HandlerContext func(context.Context) context.Context
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Observer hears the worker's tasks and lease renewals (for metrics).
	// Defaults to none.
	Observer Observer
}

// Observer hears what a worker does, for metrics: its task executor's
// events (tasks.Observer) and its registry lease's failed renewals. Every
// method must return at once.
type Observer interface {
	tasks.Observer
	// LeaseRenewFailed: a renewal of the worker's registry entry failed
	// (the broker unreachable, or the lease lost).
	LeaseRenewFailed()
}

// Worker is a configured worker; Run serves.
type Worker struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	o    Options
	log  *slog.Logger
	exec atomic.Pointer[tasks.Executor] // set once by Run; read by Running
	reg  atomic.Bool                    // the registry lease is held (first taken)

	mu   sync.Mutex
	info broker.WorkerInfo
}

// CheckID returns an error when id cannot name a worker: its registry key
// takes 1 to 256 letters, digits, '-', '_', '=', '.' and '/'.
func CheckID(id string) error {
	ok := id != "" && len(id) <= 256 && !strings.HasPrefix(id, ".") && !strings.HasSuffix(id, ".") && !strings.Contains(id, "..")
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_=./", r)) {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("worker: id %q: want 1 to 256 letters, digits, '-', '_', '=', '.' and '/'", id)
	}
	return nil
}

// New validates options and builds the worker.
func New(nc *nats.Conn, o Options) (*Worker, error) {
	host, _ := os.Hostname()
	if o.ID == "" {
		o.ID = DefaultID()
	}
	if err := CheckID(o.ID); err != nil {
		return nil, err
	}
	if o.Pool == "" {
		o.Pool = tasks.DefaultPool
	}
	if err := taskwire.CheckPool(o.Pool); err != nil {
		return nil, err
	}
	if o.Concurrency == 0 {
		o.Concurrency = runtime.GOMAXPROCS(0)
	}
	if o.Concurrency < 0 {
		return nil, fmt.Errorf("worker: concurrency %d: want >= 1", o.Concurrency)
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 6 * time.Second
	}
	if o.LeaseTTL < time.Second {
		return nil, fmt.Errorf("worker: lease TTL %s under the 1s minimum", o.LeaseTTL)
	}
	if o.AckWait != 0 && o.AckWait < 300*time.Millisecond {
		return nil, fmt.Errorf("worker: AckWait %s under the 300ms minimum", o.AckWait)
	}
	if o.DrainTimeout < 0 {
		return nil, fmt.Errorf("worker: negative DrainTimeout %s", o.DrainTimeout)
	}
	if o.Registry == nil {
		o.Registry = tasks.NewRegistry()
		if err := RegisterBuiltins(o.Registry); err != nil {
			return nil, err
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := o.addPlugins(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	w := &Worker{nc: nc, js: js, o: o, log: o.Logger.With("worker", o.ID)}
	w.info = broker.WorkerInfo{V: broker.WorkerInfoVersion, ID: o.ID, Host: host, PID: os.Getpid(), Pool: o.Pool,
		Attributes: o.Attributes, Concurrency: o.Concurrency, Handlers: o.Registry.Names(), StartedMS: time.Now().UnixMilli()}
	// Job capacity is the job runner's to describe: none without one.
	for _, p := range o.Plugins {
		p.Describe(&w.info)
	}
	sort.Strings(w.info.ActorClasses)
	return w, nil
}

// ID is the worker's id.
func (w *Worker) ID() string { return w.o.ID }

// NATS is the worker's connection.
func (w *Worker) NATS() *nats.Conn { return w.nc }

// Info is a copy of the worker's registry record.
func (w *Worker) Info() broker.WorkerInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.info
}

// Registered reports whether Run has registered the worker (taken its
// registry lease) and not yet stopped.
func (w *Worker) Registered() bool { return w.reg.Load() }

// Serving reports whether the worker's executor has started and pulls
// tasks of its pool.
func (w *Worker) Serving() bool {
	ex := w.exec.Load()
	return ex != nil && ex.Pulling()
}

// Running is the number of tasks running now.
// DefaultPrefetch is fray-worker's prefetch for a worker of concurrency
// slots (0: GOMAXPROCS): 8 tasks a slot.
func DefaultPrefetch(concurrency int) int {
	if concurrency <= 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	return 8 * concurrency
}

// Held is the number of prefetched tasks waiting for a slot now.
func (w *Worker) Held() int {
	ex := w.exec.Load()
	if ex == nil {
		return 0
	}
	return ex.Held()
}

func (w *Worker) Running() int {
	ex := w.exec.Load()
	if ex == nil {
		return 0
	}
	return ex.Running()
}

// Run registers the worker and serves until ctx ends, then drains: plugins
// and the executor stop (running tasks finish within DrainTimeout, the rest
// are handed back) and the registry entry is removed.
func (w *Worker) Run(ctx context.Context) error {
	// Start-up steps the server may refuse or time out while thousands of
	// workers start together are retried with backoff; only a live worker
	// holding this id ends the start.
	store := w.o.Objects
	if store == nil && broker.Retry(ctx, w.log, "open the object store", func(ctx context.Context) (err error) {
		store, err = objects.New(ctx, w.js, objects.Options{InlineThreshold: w.o.InlineThreshold})
		return err
	}) != nil {
		return fmt.Errorf("worker: %w", ctx.Err())
	}
	var view *registry.View
	if err := broker.Retry(ctx, w.log, "open the pool directory", func(ctx context.Context) (err error) {
		view, err = registry.Shared(ctx, w.nc)
		return err
	}); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	defer view.Release()
	ex, err := tasks.NewExecutor(w.nc, w.js, tasks.ExecutorOptions{
		WorkerID: w.o.ID, Pool: w.o.Pool, Concurrency: w.o.Concurrency, Prefetch: w.o.Prefetch, AckWait: w.o.AckWait,
		DrainTimeout: w.o.DrainTimeout, Registry: w.o.Registry, Objects: store,
		HandlerContext: w.o.HandlerContext, Logger: w.log, Observer: w.o.Observer, Workers: view,
	})
	if err != nil {
		return err
	}
	w.exec.Store(ex)
	rec, err := objects.Marshal(w.Info())
	if err != nil {
		return err
	}
	var lease *broker.Lease
	if err := broker.Retry(ctx, w.log, "register", func(ctx context.Context) (err error) {
		lease, err = broker.AcquireLease(ctx, w.js, broker.BucketWorkers, w.o.ID, rec, w.o.LeaseTTL)
		if errors.Is(err, broker.ErrLeaseHeld) {
			// Our own record, if an earlier try was stored without its
			// acknowledgement reaching us; else another live process.
			own, ours, rerr := w.resume(ctx)
			switch {
			case rerr != nil:
				return rerr
			case !ours:
				return broker.Permanent(err)
			}
			lease, err = own, nil
		}
		return err
	}); err != nil {
		return fmt.Errorf("worker: register %s: %w", w.o.ID, err)
	}
	w.reg.Store(true)
	w.log.Info("worker registered", "pool", w.o.Pool, "concurrency", w.o.Concurrency, "handlers", w.info.Handlers)

	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	leaseCtx, stopLease := context.WithCancel(context.Background())
	leaseDone := make(chan struct{})
	go func() {
		defer close(leaseDone)
		if err := w.keepLease(leaseCtx, lease); err != nil {
			cancelRun(err)
		}
	}()

	var g run.Group
	{
		ectx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return ex.Run(ectx) }, func(error) { cancel() })
	}
	self := w.Info()
	for _, p := range w.o.Plugins {
		pctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return p.Run(pctx, w.nc, w.js, &self) }, func(error) { cancel() })
	}
	g.Add(func() error {
		<-runCtx.Done()
		w.mu.Lock()
		w.info.Draining = true
		w.mu.Unlock()
		w.log.Info("worker draining", "running", w.Running())
		return context.Cause(runCtx)
	}, func(error) { cancelRun(nil) })
	err = g.Run()
	stopLease()
	<-leaseDone
	w.reg.Store(false)
	w.log.Info("worker stopped", "served", ex.Served())
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// keepLease renews the registry entry until ctx ends, then releases it.
// A lease lost while the broker was away is re-acquired; one taken by
// another process with the same id is fatal.
func (w *Worker) keepLease(ctx context.Context, lease *broker.Lease) error {
	for {
		if w.o.Observer != nil {
			lease.OnRenewError(func(error) { w.o.Observer.LeaseRenewFailed() })
		}
		err := lease.Keep(ctx, w.record)
		if !errors.Is(err, broker.ErrLeaseLost) {
			return nil
		}
		w.log.Warn("registry lease lost; registering again", "err", err)
		for n := 0; ; n++ {
			lease, err = broker.AcquireLease(ctx, w.js, broker.BucketWorkers, w.o.ID, w.record(), w.o.LeaseTTL)
			if err == nil {
				break
			}
			if errors.Is(err, broker.ErrLeaseHeld) {
				// The key may hold our own record: a renewal stored without
				// its acknowledgement reaching us. Then the lease is still ours.
				own, ours, rerr := w.resume(ctx)
				if rerr == nil && ours {
					lease = own
					break
				}
				if rerr == nil {
					return fmt.Errorf("worker %s: another live worker registered the same id: %w", w.o.ID, err)
				}
				if errors.Is(rerr, jetstream.ErrKeyNotFound) {
					continue // expired since: register again now
				}
				w.log.Warn("read the registry entry; will retry", "err", rerr)
			}
			select {
			case <-ctx.Done():
				return nil
			// Retry soon (a stream leader may just have been elected; the
			// liveness deciders wait registry.ExpiryGrace for us), backing
			// off while the broker stays unreachable.
			case <-time.After(min(broker.Backoff(n), w.o.LeaseTTL/3)):
			}
		}
	}
}

// resume returns the lease on the worker's key when the record there is
// this worker's own (same id, host, process and start time); ours is false
// when the key holds another process's record, or one it cannot read. An
// error means the key could not be read (the broker unreachable, or the key
// gone).
func (w *Worker) resume(ctx context.Context) (lease *broker.Lease, ours bool, err error) {
	kv, err := broker.KeyValue(ctx, w.js, broker.BucketWorkers)
	if err != nil {
		return nil, false, err
	}
	e, err := kv.Get(ctx, w.o.ID)
	if err != nil {
		return nil, false, err
	}
	var got broker.WorkerInfo
	if objects.Unmarshal(e.Value(), &got) != nil {
		return nil, false, nil
	}
	self := w.Info()
	if got.ID != self.ID || got.Host != self.Host || got.PID != self.PID || got.StartedMS != self.StartedMS {
		return nil, false, nil
	}
	lease, err = broker.ResumeLease(ctx, w.js, broker.BucketWorkers, w.o.ID, e.Revision(), w.o.LeaseTTL)
	return lease, err == nil, err
}

// record is the registry value published on each lease renewal.
func (w *Worker) record() []byte {
	w.mu.Lock()
	w.info.Running = w.Running()
	w.info.Handlers = w.o.Registry.Names() // handlers may be added while it runs
	info := w.info
	w.mu.Unlock()
	b, _ := objects.Marshal(info)
	return b
}
