package clusterview

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/registry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options configures a View. Every field has a default.
type Options struct {
	// Refresh is how often pool consumers and streams are polled, and the
	// spacing of the pool history. Defaults to 2 s.
	Refresh time.Duration
	// History is how many Refresh intervals of pool history are kept.
	// Defaults to 90 (3 minutes at the default Refresh).
	History int
	// Failures is how many recent task failures are kept. Defaults to 100.
	Failures int
	// OnResult, if set, hears every stored task result (on the results
	// subscription's goroutine; it must return at once).
	OnResult func(*Result)
	// OnJob, if set, hears every job record update after the initial load
	// (with the previous record, nil for a new job), under the view's lock:
	// it must return at once and not call the view.
	OnJob func(prev, cur *jobs.Record)
	// OnActor, if set, hears every actor record update after the initial
	// load, like OnJob.
	OnActor func(prev, cur *actors.Record)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// View is the live picture. Its zero value is not usable; call New.
type View struct {
	o     Options
	log   *slog.Logger
	ready chan struct{}

	mu       sync.RWMutex
	jobs     map[string]*jobs.Record   // by job id
	actors   map[string]*actors.Record // by KV key
	workers  *registry.Live
	pools    map[string]*Pool
	streams  []Stream
	failures []Failure // ring, newest last
	polled   time.Time
	pollErr  string
	sub      atomic.Pointer[nats.Subscription]

	// changed is closed (and replaced) whenever something changes.
	cmu     sync.Mutex
	changed chan struct{}
}

// New makes a view; Run fills it.
func New(o Options) *View {
	if o.Refresh <= 0 {
		o.Refresh = 2 * time.Second
	}
	if o.History <= 0 {
		o.History = 90
	}
	if o.Failures <= 0 {
		o.Failures = 100
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &View{o: o, log: o.Logger, ready: make(chan struct{}), jobs: map[string]*jobs.Record{},
		actors: map[string]*actors.Record{}, pools: map[string]*Pool{}, changed: make(chan struct{})}
}

// Ready is closed once the jobs, actors and workers are loaded and the
// first poll is done.
func (v *View) Ready() <-chan struct{} { return v.ready }

// Changed returns a channel closed at the next change of the view.
func (v *View) Changed() <-chan struct{} {
	v.cmu.Lock()
	defer v.cmu.Unlock()
	return v.changed
}

func (v *View) notify() {
	v.cmu.Lock()
	close(v.changed)
	v.changed = make(chan struct{})
	v.cmu.Unlock()
}

// Refresh is the polling interval.
func (v *View) Refresh() time.Duration { return v.o.Refresh }

// Run keeps the view current until ctx ends. nc should be a connection of
// the view's own: a reader that falls behind on the results subscription
// loses messages there (counted as dropped), never the connection of a
// process's other work.
func (v *View) Run(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wv, err := registry.WatchLive(ctx, js)
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.workers = wv
	v.mu.Unlock()
	jobsKV, err := js.KeyValue(ctx, broker.BucketJobState)
	if err != nil {
		return fmt.Errorf("clusterview: %s: %w", broker.BucketJobState, err)
	}
	actorsKV, err := js.KeyValue(ctx, broker.BucketActors)
	if err != nil {
		return fmt.Errorf("clusterview: %s: %w", broker.BucketActors, err)
	}
	sub, err := v.subscribeResults(nc)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()

	jobsReady, actorsReady := make(chan struct{}), make(chan struct{})
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); errs <- v.watch(ctx, jobsKV, jobwire.KeyJobPrefix+">", jobsReady, v.applyJob) }()
	go func() { defer wg.Done(); errs <- v.watch(ctx, actorsKV, "a.>", actorsReady, v.applyActor) }()
	defer wg.Wait()
	defer cancel()

	tick := time.NewTicker(v.o.Refresh)
	defer tick.Stop()
	v.poll(ctx, js)
	for _, c := range []<-chan struct{}{jobsReady, actorsReady, wv.Ready()} {
		select {
		case <-c:
		case err := <-errs:
			return err
		case <-ctx.Done():
			return nil
		}
	}
	close(v.ready)
	v.notify()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case <-wv.Done():
			if ctx.Err() != nil {
				return nil
			}
			return errors.New("clusterview: worker registry watch ended")
		case <-tick.C:
			v.poll(ctx, js)
			v.notify()
		}
	}
}

// watch applies every update of the keys under filter until ctx ends.
// Updates before the initial load completes are applied with initial set.
func (v *View) watch(ctx context.Context, kv jetstream.KeyValue, filter string, ready chan struct{}, apply func(e jetstream.KeyValueEntry, initial bool)) error {
	w, err := kv.WatchFiltered(ctx, []string{filter})
	if err != nil {
		return fmt.Errorf("clusterview: watch %s: %w", filter, err)
	}
	defer w.Stop()
	initial := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("clusterview: watch %s ended", filter)
			}
			if e == nil {
				if initial {
					initial = false
					close(ready)
				}
				continue
			}
			apply(e, initial)
			if !initial {
				v.notify()
			}
		}
	}
}

func (v *View) applyJob(e jetstream.KeyValueEntry, initial bool) {
	var r *jobs.Record
	if e.Operation() == jetstream.KeyValuePut {
		var err error
		if r, err = jobs.DecodeRecord(e.Value()); err != nil {
			return // a record this version cannot read is left out
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	id := jobwire.IDFromToken(e.Key()[len(jobwire.KeyJobPrefix):])
	if r != nil {
		id = r.ID
	}
	prev := v.jobs[id]
	if r == nil {
		delete(v.jobs, id)
	} else {
		v.jobs[id] = r
	}
	if !initial && r != nil && v.o.OnJob != nil {
		v.o.OnJob(prev, r)
	}
}

func (v *View) applyActor(e jetstream.KeyValueEntry, initial bool) {
	var r *actors.Record
	if e.Operation() == jetstream.KeyValuePut {
		r = new(actors.Record)
		if err := decode(e.Value(), r); err != nil || r.V != actors.RecordVersion {
			return
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	prev := v.actors[e.Key()]
	if r == nil {
		delete(v.actors, e.Key())
	} else {
		v.actors[e.Key()] = r
	}
	if !initial && r != nil && v.o.OnActor != nil {
		v.o.OnActor(prev, r)
	}
}
