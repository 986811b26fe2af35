package tasks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/registry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ExecutorOptions configures an Executor.
type ExecutorOptions struct {
	// WorkerID names the worker in results. Required.
	WorkerID string
	// Pool is the pool served. Defaults to "default".
	Pool string
	// Concurrency is the number of task slots. Defaults to GOMAXPROCS.
	Concurrency int
	// Prefetch is the most tasks the executor holds beyond its slots, so
	// that a slot that frees starts the next task without a round trip to
	// the server. It holds only as many as its slots would start within a
	// few milliseconds at the pace of the tasks run lately, none until a
	// task has run, and hands a held task back if it waits a second (then
	// prefetches nothing until tasks are seen to be short again): long
	// tasks are shared out between workers as without prefetch. Held tasks
	// heartbeat like running ones; a task handed back after waiting uses
	// up neither a delivery nor a retry (one a drain hands back counts as
	// a delivery, as a running one does). Defaults to 0: never more tasks
	// than free slots.
	Prefetch int
	// AckWait is the task lease: a task whose worker stops heartbeating for
	// this long is redelivered. Running tasks heartbeat every AckWait/4.
	// Defaults to 30 s.
	AckWait time.Duration
	// DrainTimeout is how long a stopping executor lets running tasks
	// finish before cancelling them and handing them back. Defaults to 30 s.
	DrainTimeout time.Duration
	// Registry holds the handlers. Required.
	Registry *Registry
	// Objects resolves argument refs and stores large results. Without it,
	// such values fail the task with a clear error.
	Objects *objects.Store
	// HandlerContext, if set, derives each handler's context (to carry a
	// client, say).
	HandlerContext func(context.Context) context.Context
	// Workers is the pool directory view used to hand a task on to a peer
	// that serves its function. Defaults to registry.Shared of the
	// executor's connection.
	Workers *registry.View
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Observer hears each task start, finish and retry (for metrics).
	// Defaults to none.
	Observer Observer

	// timeoutGrace overrides timeoutGrace; tests shorten it (export_test.go).
	timeoutGrace time.Duration
	// holdLimit overrides holdLimit; tests lengthen it (export_test.go).
	holdLimit time.Duration
	// prefetchWindow overrides prefetchWindow; tests widen it so that
	// what is prefetched does not depend on how fast the machine is.
	prefetchWindow time.Duration
}

// Executor pulls tasks of one pool and runs them on a fixed number of
// slots, never holding more messages than it has free slots (plus, with
// Prefetch, a few that the slots are about to start).
type Executor struct {
	o     ExecutorOptions
	nc    *nats.Conn
	js    jetstream.JetStream
	log   *slog.Logger
	pull  *puller
	park  parking // the puller's, drawn when the executor is made
	view  *registry.View
	slots []atomic.Pointer[runningTask]

	cmu       sync.RWMutex
	cancelled map[string]time.Time // id → when first seen
	retries   sync.WaitGroup
	rmu       sync.Mutex // guards rclosed against retries.Add racing Wait, and resending
	rclosed   bool
	resending map[*nats.Msg]struct{} // tasks whose result is being sent again

	work   chan *nats.Msg
	held   *heldTasks // with Prefetch: received, not yet taken by a slot
	pub    *asyncPublisher
	served atomic.Int64
	// maxWaiting is the pool consumer's MaxWaiting, as last looked up.
	maxWaiting atomic.Int64
	draining   atomic.Bool // set when Run's ctx ends: no task starts after it
	pulling    atomic.Bool // set once Run has started pulling tasks
}

type runningTask struct {
	id      string
	msg     *nats.Msg // nil once the attempt ended without its handler (see callWithin)
	started time.Time
	cancel  context.CancelCauseFunc
}

var errDrain = errors.New("worker draining")

// NewExecutor validates options. Run starts serving.
func NewExecutor(nc *nats.Conn, js jetstream.JetStream, o ExecutorOptions) (*Executor, error) {
	if o.WorkerID == "" {
		return nil, errors.New("tasks: executor needs a WorkerID")
	}
	if o.Registry == nil {
		return nil, errors.New("tasks: executor needs a Registry")
	}
	if o.Pool == "" {
		o.Pool = DefaultPool
	}
	if err := taskwire.CheckPool(o.Pool); err != nil {
		return nil, err
	}
	if o.Concurrency <= 0 {
		o.Concurrency = runtime.GOMAXPROCS(0)
	}
	if o.Prefetch < 0 {
		return nil, fmt.Errorf("tasks: Prefetch %d: want >= 0", o.Prefetch)
	}
	if o.AckWait == 0 {
		o.AckWait = 30 * time.Second
	}
	if o.AckWait < 300*time.Millisecond {
		return nil, fmt.Errorf("tasks: AckWait %s under the 300ms minimum", o.AckWait)
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = 30 * time.Second
	}
	if o.timeoutGrace <= 0 {
		o.timeoutGrace = timeoutGrace
	}
	if o.holdLimit <= 0 {
		o.holdLimit = holdLimit
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Observer == nil {
		o.Observer = noObserver{}
	}
	e := &Executor{o: o, nc: nc, js: js, log: o.Logger.With("pool", o.Pool),
		slots: make([]atomic.Pointer[runningTask], o.Concurrency), cancelled: map[string]time.Time{},
		resending: map[*nats.Msg]struct{}{}, park: newParking(o.Pool)}
	if o.Prefetch > 0 {
		e.held = newHeldTasks()
	}
	return e, nil
}

// Held is the number of tasks received beyond the slots (see Prefetch)
// and waiting for one now.
func (e *Executor) Held() int {
	if e.held == nil {
		return 0
	}
	return e.held.len()
}

// Running is the number of tasks running now.
func (e *Executor) Running() int {
	n := 0
	for i := range e.slots {
		if e.slots[i].Load() != nil {
			n++
		}
	}
	return n
}

// Pulling reports whether Run has finished starting (its consumer, the
// pool directory and the cancellations are ready) and pulls tasks.
func (e *Executor) Pulling() bool { return e.pulling.Load() && !e.draining.Load() }

// Served is the number of tasks completed (with any outcome) so far.
func (e *Executor) Served() int64 { return e.served.Load() }

// Run serves tasks until ctx ends, then drains: it stops pulling, lets
// running tasks finish for DrainTimeout, cancels the rest and hands them
// back (nak) so other workers take them at once.
func (e *Executor) Run(ctx context.Context) error {
	// Start-up steps the server may refuse while thousands of workers
	// start at once (a JetStream timeout, a limit) are retried.
	if err := broker.Retry(ctx, e.log, "create the pool's consumer", e.ensureConsumer); err != nil {
		return err
	}
	// The background watchers end with Run, however it returns.
	bg, stopBG := context.WithCancel(context.Background())
	var bgDone []<-chan struct{}
	defer func() {
		stopBG()
		for _, done := range bgDone {
			<-done
		}
	}()
	if e.o.Workers != nil {
		e.view = e.o.Workers
	} else {
		if err := broker.Retry(ctx, e.log, "open the pool directory", func(ctx context.Context) (err error) {
			e.view, err = registry.Shared(ctx, e.nc)
			return err
		}); err != nil {
			return err
		}
		defer e.view.Release()
	}
	cancelsDone, cancelsReady, err := e.watchCancels(ctx, bg)
	if err != nil {
		return err
	}
	bgDone = append(bgDone, cancelsDone)

	e.pull = newPuller(e.nc, broker.StreamTasks, taskwire.ConsumerName(e.o.Pool), e.o.Concurrency, e.o.Prefetch)
	if e.o.prefetchWindow > 0 {
		e.pull.window = e.o.prefetchWindow
	}
	e.pull.park = e.park
	stopDenied := broker.OnPermissionDenied(e.nc, func(pe *broker.PermissionError) {
		if pe.Op == "subscribe" && pe.Subject == e.park.subject {
			e.log.Error("these credentials may not listen for wakes on "+pe.Subject+": this worker never parks (written by an older `fray auth init`? run it again to grant it)", "err", pe)
			e.pull.wakesDenied()
		}
	})
	defer stopDenied()
	e.work = make(chan *nats.Msg, 2*(e.o.Concurrency+e.o.Prefetch))
	if e.pub, err = newAsyncPublisher(e.nc, 4096, 10*time.Second); err != nil {
		return fmt.Errorf("tasks: %w", err)
	}
	sub, err := e.nc.Subscribe(e.pull.inbox+".*", func(m *nats.Msg) {
		switch e.pull.onMsg(m) {
		case pulledStatus:
			return
		case pulledExtra:
			m.Nak() // every slot is taken: hand it back rather than hold it
			return
		}
		if e.draining.Load() {
			m.Nak()
			e.pull.releaseUnrun()
			return
		}
		if e.held != nil {
			e.held.add(m, time.Now())
		}
		// The puller holds at most Concurrency+Prefetch messages, and the
		// channel has room for twice that (hand-backs leave stale entries
		// in it until a slot skips them); should it be full, the message
		// goes back rather than block the connection's callbacks.
		select {
		case e.work <- m:
		default:
			if e.held == nil || e.held.take(m) {
				m.Nak()
				e.pull.releaseUnrun()
			}
		}
	})
	if err != nil {
		e.pub.close()
		return fmt.Errorf("tasks: subscribe: %w", err)
	}
	sub.SetPendingLimits(-1, -1)

	// Handler contexts outlive ctx by the drain grace period.
	hctx, cancelHandlers := context.WithCancelCause(context.Background())
	defer cancelHandlers(errDrain)
	var slotsWG sync.WaitGroup
	for i := range e.slots {
		slotsWG.Add(1)
		go func() {
			defer slotsWG.Done()
			for m := range e.work {
				if e.held == nil {
					e.process(hctx, i, m)
					e.pull.release(0)
					continue
				}
				if !e.held.take(m) {
					continue // handed back while it waited; released then
				}
				start := time.Now()
				e.process(hctx, i, m)
				e.pull.release(time.Since(start))
			}
		}()
	}
	tickerDone := make(chan struct{})
	tickCtx, stopTicks := context.WithCancel(bg)
	go func() {
		defer close(tickerDone)
		e.ticks(tickCtx)
	}()

	// Take no task before knowing the pool's peers (a task only a peer
	// serves is handed on, not failed) and the cancellations (a task
	// cancelled while queued never starts).
	_ = broker.Retry(ctx, e.log, "read the pool directory", func(ctx context.Context) error {
		_, _, err := e.view.Pool(ctx, e.o.Pool)
		return err
	})
	select {
	case <-cancelsReady:
	case <-ctx.Done():
	}
	if ctx.Err() == nil {
		e.pull.setWorkers(e.poolWorkers(ctx))
		e.pull.start()
		e.pulling.Store(true)
	}
	<-ctx.Done()

	// Drain. A message received before draining is set is held (counted by
	// the puller) until its slot releases it, so waiting until none is held
	// also waits for tasks about to start; those see draining and hand
	// their message back instead of starting, and the callback never sends
	// on e.work after it is closed.
	e.draining.Store(true)
	e.pull.drain()
	if e.held != nil {
		e.handBack(e.held.removeOlder(time.Time{})) // no slot would take them now
	}
	deadline := time.NewTimer(e.o.DrainTimeout)
	defer deadline.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
wait:
	for e.pull.held() > 0 {
		select {
		case <-deadline.C:
			e.log.Warn("drain timeout: cancelling running tasks and handing them back", "running", e.Running())
			break wait
		case <-poll.C:
		}
	}
	// Past the timeout this hands running tasks back; otherwise it only
	// lets go the slots of abandoned handlers (see abandon).
	cancelHandlers(errDrain)
	sub.Unsubscribe()
	close(e.work)
	slotsWG.Wait()
	e.pub.waitIdle(10 * time.Second)
	e.pub.close()
	e.rmu.Lock()
	e.rclosed = true
	e.rmu.Unlock()
	e.retries.Wait()
	stopTicks()
	<-tickerDone
	e.nc.Flush()
	return nil // the deferred clean-up stops the watchers
}

// MaxWaiting is the MaxWaiting (open pull requests) of a pool consumer
// this fray creates. An idle worker keeps one request open (a busy one up
// to two), so a pool holds up to MaxWaiting idle workers (fewer while
// requests the workers gave up on after a reconnect linger). nats-server keeps waiting requests in
// a list that costs nothing until used; it cannot change a consumer's
// MaxWaiting, so a consumer created by an older fray (4,096) keeps its own.
const MaxWaiting = 1 << 16

// ensureConsumer creates the pool's durable consumer, or updates it when
// its settings differ from this executor's. A consumer already as wanted
// is only looked up: thousands of workers starting together do not
// rewrite it thousands of times.
func (e *Executor) ensureConsumer(ctx context.Context) error {
	cfg := jetstream.ConsumerConfig{
		Durable:       taskwire.ConsumerName(e.o.Pool),
		Description:   "fray workers of pool " + e.o.Pool,
		FilterSubject: taskwire.TaskSubject(e.o.Pool),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       e.o.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: -1,
		MaxWaiting:    MaxWaiting,
	}
	if c, err := e.js.Consumer(ctx, broker.StreamTasks, cfg.Durable); err == nil {
		got := c.CachedInfo().Config
		cfg.MaxWaiting = got.MaxWaiting // fixed at creation
		e.maxWaiting.Store(int64(got.MaxWaiting))
		if got.AckWait == cfg.AckWait && got.FilterSubject == cfg.FilterSubject && got.MaxDeliver == cfg.MaxDeliver &&
			got.MaxAckPending == cfg.MaxAckPending && got.AckPolicy == cfg.AckPolicy {
			return nil
		}
	}
	c, err := e.js.CreateOrUpdateConsumer(ctx, broker.StreamTasks, cfg)
	if err != nil {
		return fmt.Errorf("tasks: consumer for pool %s: %w", e.o.Pool, err)
	}
	e.maxWaiting.Store(int64(c.CachedInfo().Config.MaxWaiting))
	return nil
}

// pullLimitError explains a pull request refused because the pool's
// consumer holds its MaxWaiting of open requests.
func (e *Executor) pullLimitError(status string) error {
	return fmt.Errorf("%w: pool %s's consumer %s on %s holds at most %d open pull requests (its MaxWaiting; an idle worker keeps one open), "+
		"so this worker gets no tasks until others' requests end; the pool has more workers than the consumer allows: "+
		"while the pool is idle, delete the consumer (nats consumer rm %s %s) and the next worker creates it with MaxWaiting %d "+
		"(server said %q)", broker.ErrLimit, e.o.Pool, taskwire.ConsumerName(e.o.Pool), broker.StreamTasks, e.maxWaiting.Load(),
		broker.StreamTasks, taskwire.ConsumerName(e.o.Pool), MaxWaiting, status)
}

// limitLogEvery spaces out the error a worker logs while the pool's
// consumer refuses its pull requests for MaxWaiting.
const limitLogEvery = 30 * time.Second

// ticks heartbeats long-running tasks and retires dead pull requests.
func (e *Executor) ticks(ctx context.Context) {
	// Beat every AckWait/4 so two beats can be late before a lease lapses.
	every := e.o.AckWait / 4
	t := time.NewTicker(min(every/2, time.Second))
	defer t.Stop()
	lastBeat := time.Now()
	var lastLimitLog time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			e.pull.setWorkers(e.poolWorkers(ctx))
			failed := e.pull.tick(now)
			if e.held != nil {
				if late := e.held.removeOlder(now.Add(-e.o.holdLimit)); len(late) > 0 {
					// The pace misled: prefetch nothing until it is short again.
					e.pull.slowDown(e.o.holdLimit)
					for _, m := range late {
						e.handBackUncounted(m)
					}
				}
			}
			switch {
			case strings.Contains(failed, "Exceeded MaxWaiting"):
				// The consumer is there and full: no need to look it up.
				if now.Sub(lastLimitLog) >= limitLogEvery {
					lastLimitLog = now
					e.log.Error("pull request refused; asking again", "err", e.pullLimitError(failed))
				}
			case failed != "":
				e.log.Warn("pull request refused; asking again", "consumer", taskwire.ConsumerName(e.o.Pool), "status", failed)
				// The consumer may be gone (deleted by an operator, or the
				// stream recreated): put it back.
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				if err := e.ensureConsumer(cctx); err != nil {
					e.log.Warn("recreate consumer", "err", err)
				}
				cancel()
			}
			if now.Sub(lastBeat) < every {
				continue
			}
			lastBeat = now
			for i := range e.slots {
				if r := e.slots[i].Load(); r != nil && r.msg != nil {
					r.msg.InProgress()
				}
			}
			// A finished task is acked once its result is stored; a slow
			// PubAck must not let its lease lapse meanwhile.
			for _, m := range e.pub.heldMsgs() {
				m.InProgress()
			}
			if e.held != nil {
				e.held.each(func(m *nats.Msg) { m.InProgress() })
			}
			e.rmu.Lock()
			for m := range e.resending {
				m.InProgress()
			}
			e.rmu.Unlock()
		}
	}
}

// watchCancels keeps the set of cancelled task ids and cancels running ones.
// ready is closed once the cancellations stored so far are known. New
// cancellations arrive on a core subscription to the bucket's subjects (no
// consumer per worker); the stored ones are read once at start, and again
// after a reconnect, by a watch that ends with the read. An id is
// forgotten when its cancellation would have expired (the bucket's TTL).
func (e *Executor) watchCancels(ctx, bg context.Context) (done, ready <-chan struct{}, err error) {
	var kv jetstream.KeyValue
	if err := broker.Retry(ctx, e.log, "open the cancellations", func(ctx context.Context) (err error) {
		kv, err = broker.KeyValue(ctx, e.js, broker.BucketCancels)
		return err
	}); err != nil {
		return nil, nil, fmt.Errorf("tasks: cancel bucket: %w", err)
	}
	// The bucket's TTL (how long a cancellation is kept) is read at the
	// first prune, a minute in, not among the start-up requests.
	keep := time.Duration(-1)
	prefix := "$KV." + broker.BucketCancels + "."
	sub, err := e.nc.Subscribe(prefix+"*", func(m *nats.Msg) {
		if m.Header.Get("KV-Operation") != "" {
			return
		}
		e.cancel(strings.TrimPrefix(m.Subject, prefix))
	})
	if err != nil {
		return nil, nil, fmt.Errorf("tasks: subscribe to cancellations: %w", broker.ExplainLimit(err))
	}
	sub.SetPendingLimits(-1, -1)
	doneCh, readyCh := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(doneCh)
		defer sub.Unsubscribe()
		load := func() error {
			lctx, cancel := context.WithTimeout(bg, 30*time.Second)
			defer cancel()
			w, err := kv.WatchAll(lctx, jetstream.IgnoreDeletes(), jetstream.MetaOnly())
			if err != nil {
				return err
			}
			defer func() { _ = w.Stop() }()
			for {
				select {
				case <-lctx.Done():
					return lctx.Err()
				case en, ok := <-w.Updates():
					if !ok {
						return errors.New("watch closed")
					}
					if en == nil {
						return nil
					}
					e.cancel(en.Key())
				}
			}
		}
		if broker.Retry(bg, e.log, "read the cancellations", func(context.Context) error { return load() }) != nil {
			close(readyCh)
			return
		}
		close(readyCh)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		reconnects, lastPrune := e.nc.Stats().Reconnects, time.Now()
		for {
			select {
			case <-bg.Done():
				return
			case now := <-t.C:
				if r := e.nc.Stats().Reconnects; r != reconnects && e.nc.IsConnected() {
					// Cancellations stored while disconnected reached no
					// subscriber: read them all again.
					if broker.Retry(bg, e.log, "read the cancellations", func(context.Context) error { return load() }) != nil {
						return
					}
					reconnects = r
				}
				if keep < 0 && now.Sub(lastPrune) >= time.Minute {
					sctx, cancel := context.WithTimeout(bg, 5*time.Second)
					if st, err := kv.Status(sctx); err == nil {
						keep = st.TTL()
					}
					cancel()
				}
				if keep > 0 && now.Sub(lastPrune) >= time.Minute {
					lastPrune = now
					e.cmu.Lock()
					for id, at := range e.cancelled {
						if now.Sub(at) > keep {
							delete(e.cancelled, id)
						}
					}
					e.cmu.Unlock()
				}
			}
		}
	}()
	return doneCh, readyCh, nil
}

// cancel records id as cancelled and cancels it if it is running here.
func (e *Executor) cancel(id string) {
	e.cmu.Lock()
	if _, ok := e.cancelled[id]; !ok {
		e.cancelled[id] = time.Now()
	}
	e.cmu.Unlock()
	for i := range e.slots {
		if r := e.slots[i].Load(); r != nil && r.id == id {
			r.cancel(ErrCancelled)
		}
	}
}

func (e *Executor) isCancelled(id string) bool {
	e.cmu.RLock()
	_, ok := e.cancelled[id]
	e.cmu.RUnlock()
	return ok
}

// process runs one delivered task message on slot i.
func (e *Executor) process(hctx context.Context, slot int, m *nats.Msg) {
	ack, err := ackMeta(m.Reply)
	if err != nil {
		e.log.Error("task message without JetStream metadata; terminating it", "subject", m.Subject, "err", err)
		m.Term()
		return
	}
	prior := 0
	ph := m.Header.Get(taskwire.HeaderPriorDeliveries) // set only on handed-on copies
	if ph != "" {
		prior, _ = strconv.Atoi(ph)
	}
	attempt := max(0, prior) + int(ack.delivered)
	tr := &taskRun{e: e, m: m}
	t := &tr.t
	if err := taskwire.DecodeTaskInto(m.Data, taskwire.TaskMsgName(m.Header.Get(jetstream.MsgIDHeader), ph != ""), t); err != nil {
		e.poison(m, err)
		return
	}
	if e.isCancelled(t.ID) {
		m.Ack() // the canceller recorded the result
		return
	}
	started := time.Now()
	tr.started = started
	tr.res = Result{V: taskwire.ResultVersion, ID: t.ID, Fn: t.Fn, Pool: e.o.Pool, Worker: e.o.WorkerID, Attempt: attempt,
		SubmittedMS: t.SubmittedMS, StartedMS: started.UnixMilli()}
	res := &tr.res
	fail := func(kind, typ, msg string) { e.fail(tr, kind, typ, msg) }
	if attempt > t.MaxDeliveries+t.Retries && t.MaxDeliveries > 0 {
		fail(KindExhausted, "", fmt.Sprintf("delivered %d times without a result: the workers running it crashed or lost their leases (MaxDeliveries %d)", attempt-1, t.MaxDeliveries))
		return
	}
	h, ok := e.o.Registry.Lookup(t.Fn)
	if !ok {
		if served, _ := e.view.Serves(e.o.Pool, t.Fn); served {
			e.handOn(hctx, slot, m, t.ID, attempt-1, ack.streamSeq) // a peer serves it
			return
		}
		fail(KindUnknownFn, "", fmt.Sprintf("unknown function: no live worker of pool %q registers %q (this worker registers: %v)", e.o.Pool, t.Fn, e.o.Registry.Names()))
		return
	}
	ctx, cancel := context.WithCancelCause(hctx)
	defer cancel(nil)
	if t.TimeoutMS > 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeoutCause(ctx, time.Duration(t.TimeoutMS)*time.Millisecond, ErrTimeout)
		defer c2()
	}
	if e.o.HandlerContext != nil {
		ctx = e.o.HandlerContext(ctx)
	}
	// The future id is the tail of the result's subject: one string for both.
	tr.subject = taskwire.ResultSubject(t.Owner, t.ID)
	tr.info = TaskInfo{ID: t.ID, FutureID: tr.subject[len(tr.subject)-len(t.Owner)-1-len(t.ID):], Fn: t.Fn, Attempt: attempt,
		Worker: e.o.WorkerID, Pool: e.o.Pool}
	tr.ctx = taskContext{Context: ctx, info: &tr.info}
	ctx = &tr.ctx
	// From here the task holds its slot: it heartbeats and can be cancelled.
	tr.running = runningTask{id: t.ID, msg: m, started: started, cancel: cancel}
	e.slots[slot].Store(&tr.running)
	defer e.slots[slot].Store(nil)
	if e.draining.Load() {
		m.Nak() // not started before the drain: another worker runs it now
		return
	}
	e.o.Observer.TaskStarted(t.Fn, sinceMS(t.SubmittedMS, started))
	arg := t.Arg
	if t.ArgRef != nil {
		if e.o.Objects == nil {
			fail(KindObject, "", "argument is in the object store and this worker has none")
			return
		}
		if arg, err = e.o.Objects.GetBytes(ctx, *t.ArgRef); err != nil {
			if context.Cause(ctx) != nil {
				m.Nak()
				return
			}
			fail(KindObject, "", fmt.Sprintf("fetch argument %s: %v", t.ArgRef, err))
			return
		}
	}
	var val any
	var herr error
	late := false
	if t.TimeoutMS > 0 {
		var running <-chan struct{}
		if val, running, late, herr = callWithin(ctx, h, arg, e.o.timeoutGrace); running != nil {
			// The handler ignores its context: the attempt ends now, and
			// the handler keeps its slot (without heartbeats for a task
			// that is no longer this slot's) until it returns, or until
			// the worker stops, which it does not hold up.
			defer func() {
				e.slots[slot].Store(&runningTask{id: t.ID, started: time.Now(), cancel: cancel})
				e.pull.abandon()
				select {
				case <-running:
				case <-hctx.Done():
					e.log.Warn("stopping with a handler that ignores its context still running", "task", t.ID, "fn", t.Fn)
				}
				e.pull.reclaim()
			}()
		}
	} else {
		val, herr = call(ctx, h, arg)
	}
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errDrain):
		m.Nak() // hand it back: another worker runs it now
		return
	case errors.Is(cause, ErrCancelled):
		m.Ack()
		return
	}
	res.FinishedMS = time.Now().UnixMilli()
	if herr == nil && late {
		herr = cause // a value returned after the timeout: the attempt ran past it
	}
	if herr != nil {
		e.handlerFailed(tr, herr, cause)
		return
	}
	e.succeed(hctx, tr, val)
}

// taskRun is one attempt of a task as process handles it: the task, its
// result being built, its message, when the attempt started, what its
// handler's context and its slot hold, and the result's subject and
// encoding until the result is stored. One allocation per attempt.
type taskRun struct {
	e       *Executor
	t       taskwire.Task
	res     Result
	m       *nats.Msg
	started time.Time
	info    TaskInfo
	running runningTask
	subject string // taskwire.ResultSubject(t.Owner, t.ID), once known
	data    []byte // the encoded result, once finished
	// The handler's context and the result's encoding: parts of the one
	// allocation too.
	ctx taskContext
	buf [resultBuf]byte
}

// resultBuf holds the encoding of a typical result (a small value) in
// its task run.
const resultBuf = 192

// fail records the attempt's failure as the task's result.
func (e *Executor) fail(tr *taskRun, kind, typ, msg string) {
	t, res, attempt := &tr.t, &tr.res, tr.res.Attempt
	res.Error = &ErrorInfo{Kind: kind, Fn: t.Fn, Message: msg, Type: typ, Worker: e.o.WorkerID, Attempt: attempt}
	if typ != "" {
		res.Error.Lang = "go" // a Go handler's error, panic or result
	}
	e.o.Observer.TaskFinished(t.Fn, time.Since(tr.started), kind)
	e.finish(tr)
}

// retry hands the attempt back for a retry with the task's backoff.
func (e *Executor) retry(tr *taskRun, kind string) {
	e.o.Observer.TaskRetried(tr.t.Fn, time.Since(tr.started), kind)
	tr.m.NakWithDelay(backoff(&tr.t, tr.res.Attempt))
}

// handlerFailed settles an attempt whose handler returned herr (cause is
// its context's): handed back for a retry with backoff while the task's
// retries last and the error allows one, else recorded as failed.
func (e *Executor) handlerFailed(tr *taskRun, herr, cause error) {
	t, attempt := &tr.t, tr.res.Attempt
	fail := func(kind, typ, msg string) { e.fail(tr, kind, typ, msg) }
	var pe panicError
	var bi badInput
	var re *RemoteError
	switch {
	case errors.As(herr, &pe):
		fail(KindPanic, "panic", pe.Error())
	case errors.As(herr, &re) && !errors.Is(cause, ErrTimeout):
		// The handler described its failure itself (another language's
		// error, a runtime process that died).
		kind := cmp.Or(re.Kind, KindHandler)
		if (kind == KindRuntimeCrashed || IsRetryable(herr)) && attempt <= t.Retries {
			e.retry(tr, kind)
			return
		}
		tr.res.Error = &ErrorInfo{Kind: kind, Fn: t.Fn, Message: re.Message, Type: re.Type, Worker: e.o.WorkerID, Attempt: attempt,
			Lang: re.Lang, Traceback: re.Traceback, Exc: re.Exc}
		e.o.Observer.TaskFinished(t.Fn, time.Since(tr.started), kind)
		e.finish(tr)
	case errors.As(herr, &bi):
		fail(KindBadInput, "", bi.Error())
	case errors.Is(cause, ErrTimeout):
		if attempt <= t.Retries {
			e.retry(tr, KindTimeout)
			return
		}
		fail(KindTimeout, "", fmt.Sprintf("attempt ran past its %s timeout: %v", time.Duration(t.TimeoutMS)*time.Millisecond, herr))
	default:
		if IsRetryable(herr) && attempt <= t.Retries {
			e.retry(tr, KindHandler)
			return
		}
		fail(KindHandler, errorType(herr), herr.Error())
	}
}

// succeed records the handler's value as the task's result: inline, or in
// the object store when over its inline threshold.
func (e *Executor) succeed(ctx context.Context, tr *taskRun, val any) {
	res := &tr.res
	fail := func(kind, typ, msg string) { e.fail(tr, kind, typ, msg) }
	raw, err := nullValue, error(nil) // most handlers that return nothing: no encoder call
	if val != nil {
		raw, err = objects.Marshal(val)
	}
	if err != nil {
		fail(KindHandler, "encode", fmt.Sprintf("encode result %T: %v", val, err))
		return
	}
	if e.o.Objects == nil && len(raw) > objects.DefaultInlineThreshold {
		fail(KindObject, "", fmt.Sprintf("result is %d bytes, over the %d-byte inline limit, and this worker has no object store", len(raw), objects.DefaultInlineThreshold))
		return
	}
	if e.o.Objects != nil && len(raw) > e.o.Objects.InlineThreshold() {
		ref, err := e.o.Objects.PutBytes(ctx, raw)
		if err != nil {
			fail(KindObject, "", fmt.Sprintf("store result (%d bytes): %v", len(raw), err))
			return
		}
		res.ValueRef = &ref
	} else {
		res.Value = raw
	}
	e.o.Observer.TaskFinished(tr.t.Fn, time.Since(tr.started), "")
	e.finish(tr)
}

// nullValue is the encoding of a nil result (CBOR null), shared: a
// result's value is only read.
var nullValue = []byte{0xf6}

func backoff(t *taskwire.Task, attempt int) time.Duration {
	d := time.Duration(t.BackoffMS) * time.Millisecond
	for i := 1; i < attempt && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// timeoutGrace is how long a handler may take to return once its
// attempt's timeout has cancelled its context, before the attempt is
// ended without it (the default of ExecutorOptions.timeoutGrace). It is longer than an exec handler takes to stop its
// command (SIGTERM, then SIGKILL 5 s later), so a retry never runs beside
// a command still stopping.
const timeoutGrace = 6 * time.Second

// callWithin is call for an attempt with a timeout (ctx's deadline): a
// handler still running grace after ctx ends is left running, and
// callWithin returns ctx's cause at once with running, which is closed
// when the handler returns. late reports a value that came after ctx
// ended (the attempt ran past its timeout).
func callWithin(ctx context.Context, h Handler, arg []byte, grace time.Duration) (val any, running <-chan struct{}, late bool, err error) {
	type ret struct {
		val any
		err error
	}
	out := make(chan ret, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		v, err := call(ctx, h, arg)
		out <- ret{v, err}
	}()
	select {
	case r := <-out:
		return r.val, nil, false, r.err
	case <-ctx.Done():
	}
	select {
	case r := <-out: // returned as the timeout fired: in time
		return r.val, nil, false, r.err
	default:
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case r := <-out:
		return r.val, nil, true, r.err
	case <-t.C:
		return nil, done, false, context.Cause(ctx)
	}
}

type panicError struct{ msg string }

func (p panicError) Error() string { return p.msg }

// call runs h, turning a panic into an error.
func call(ctx context.Context, h Handler, arg []byte) (val any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicError{fmt.Sprintf("%v\n%s", r, trimStack(debug.Stack()))} // Type "panic" prefixes it
		}
	}()
	return h(ctx, arg)
}

func trimStack(s []byte) string {
	const max = 4096
	if len(s) > max {
		return string(s[:max]) + "\n..."
	}
	return string(s)
}

func errorType(err error) string {
	for {
		switch err.(type) {
		case retryable, badInput:
			err = errors.Unwrap(err)
			continue
		}
		break
	}
	return reflect.TypeOf(err).String()
}

// finish publishes the result; pubAcked acks the task once it is stored.
func (e *Executor) finish(tr *taskRun) {
	t, m := &tr.t, tr.m
	data, err := taskwire.AppendResult(tr.buf[:0], &tr.res)
	if err != nil {
		e.log.Error("encode result", "task", t.ID, "err", err)
		m.Nak()
		return
	}
	if tr.subject == "" {
		tr.subject = taskwire.ResultSubject(t.Owner, t.ID)
	}
	tr.data = data
	if err := e.pub.publishData(context.Background(), tr.subject, data, m, tr); err != nil {
		e.log.Warn("publish result; handing task back", "task", t.ID, "err", err)
		m.Nak()
	}
}

// pubAcked acks the task once its result is stored.
func (tr *taskRun) pubAcked(err error) {
	e, m, subj, data, id := tr.e, tr.m, tr.subject, tr.data, tr.t.ID
	e.served.Add(1)
	switch {
	case err == nil || alreadyRecorded(err):
		m.Ack() // stored now, or an earlier attempt's (or a cancellation's) result stands
	case errors.Is(err, ErrClosed):
		m.Nak() // shutting down: whoever runs it next finds the result if it was stored
	default:
		if !e.resendInBackground(m, func() {
			e.retryResult(completion{msg: m, subject: subj, data: data, id: id}, err)
		}) {
			m.Nak() // a late PubAck after shutdown: hand the task back
		}
	}
}

// resendInBackground runs f on a goroutine of its own while task message
// m heartbeats as one being sent again; false, without running f, once the
// executor has stopped.
func (e *Executor) resendInBackground(m *nats.Msg, f func()) bool {
	e.rmu.Lock()
	if e.rclosed {
		e.rmu.Unlock()
		return false
	}
	e.retries.Add(1)
	e.resending[m] = struct{}{}
	e.rmu.Unlock()
	go func() {
		defer e.retries.Done()
		f()
		e.rmu.Lock()
		delete(e.resending, m)
		e.rmu.Unlock()
	}()
	return true
}

type completion struct {
	msg     *nats.Msg
	subject string
	data    []byte
	id      string
}

func (e *Executor) retryResult(c completion, err error) {
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = e.js.Publish(ctx, c.subject, c.data)
		cancel()
		if err == nil || alreadyRecorded(err) {
			c.msg.Ack()
			return
		}
		time.Sleep(time.Duration(100*(i+1)) * time.Millisecond) // back off before the next try
	}
	e.log.Error("result not stored; task will run again", "task", c.id, "err", err)
	c.msg.Nak()
}

// handOnDelay paces hand-ons, so a task that only a busy peer serves does
// not spin between the workers that lack its function.
const handOnDelay, maxHandOnRetry = 100 * time.Millisecond, 2 * time.Second

// handOn gives a task this worker cannot run back to its pool, on slot
// slot. A nak would count the delivery against the task's retries and
// max_deliveries, so in a pool of workers with different functions tasks
// would fail as exhausted without ever having run. Instead, after
// handOnDelay, a copy carrying the deliveries that counted so far
// (taskwire.HeaderPriorDeliveries) is queued, and the original acked once the copy
// is stored. The copy's Nats-Msg-Id names the message it copies (by stream
// sequence): unique per hand-on and the same on a resend, so a retried
// publish is stored once.
//
// The hand-on holds its slot (and heartbeats as a running task does), so a
// worker never holds more messages than slots, and the copies a worker
// makes are bounded by its slots. A publish that fails (a full queue, a
// broker away) is retried; a drain timeout hands the original back with a
// nak, and a cancellation acks it (the canceller recorded the result).
func (e *Executor) handOn(hctx context.Context, slot int, m *nats.Msg, id string, counted int, seq uint64) {
	ctx, cancel := context.WithCancelCause(hctx)
	defer cancel(nil)
	e.slots[slot].Store(&runningTask{id: id, msg: m, started: time.Now(), cancel: cancel})
	defer e.slots[slot].Store(nil)
	cp := taskCopy(m, counted, seq)
	for delay := handOnDelay; ; delay = min(2*delay, maxHandOnRetry) {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), ErrCancelled) {
				m.Ack()
			} else {
				m.Nak()
			}
			return
		}
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := e.js.PublishMsg(pctx, cp)
		if err == nil {
			if err = m.AckSync(nats.Context(pctx)); errors.Is(err, nats.ErrMsgAlreadyAckd) {
				err = nil
			}
		}
		pcancel()
		if err == nil {
			e.pull.wake() // the peer that serves it may be parked
			return
		}
		e.log.Warn("hand a task on to a peer; will retry", "task", id, "err", err)
	}
}

// taskCopy is task message m (the stream's message seq) to queue again
// without counting its deliveries anew: it carries the counted ones
// (taskwire.HeaderPriorDeliveries), and a Nats-Msg-Id naming the message
// it copies (the task's name, taskName, with the suffix "~<seq>"), the
// same on a resend, so a retried publish is stored once. A version-1 task's copy
// keeps its Fray-Owner header.
func taskCopy(m *nats.Msg, counted int, seq uint64) *nats.Msg {
	cp := nats.NewMsg(m.Subject)
	cp.Data = m.Data
	if owner := m.Header.Get(taskwire.HeaderOwner); owner != "" {
		cp.Header.Set(taskwire.HeaderOwner, owner)
	}
	cp.Header.Set(taskwire.HeaderPriorDeliveries, strconv.Itoa(counted))
	cp.Header.Set(jetstream.MsgIDHeader, taskName(m)+"~"+strconv.FormatUint(seq, 10)) // a copy's copy keeps one suffix
	return cp
}

// taskName is the name task message m's Nats-Msg-Id gives its task
// (taskwire.TaskMsgName).
func taskName(m *nats.Msg) string {
	return taskwire.TaskMsgName(m.Header.Get(jetstream.MsgIDHeader), m.Header.Get(taskwire.HeaderPriorDeliveries) != "")
}

// poison terminates an undecodable task and reports it to its producer
// when the headers say who that is: the Nats-Msg-Id (version 2), or the
// Fray-Owner header (version 1).
func (e *Executor) poison(m *nats.Msg, cause error) {
	owner, id, ok := taskwire.ParseTaskMsgID(taskName(m))
	if owner == "" {
		owner = m.Header.Get(taskwire.HeaderOwner)
	}
	e.log.Error("malformed task terminated", "task", id, "owner", owner, "err", cause)
	if ok && taskwire.ValidToken(owner) {
		res := Result{V: taskwire.ResultVersion, ID: id, Worker: e.o.WorkerID, FinishedMS: time.Now().UnixMilli(),
			Error: &ErrorInfo{Kind: KindBadInput, Message: "malformed task record: " + cause.Error(), Worker: e.o.WorkerID}}
		if data, err := objects.Marshal(&res); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			e.js.Publish(ctx, taskwire.ResultSubject(owner, id), data)
			cancel()
		}
	}
	m.Term()
}

// alreadyRecorded reports the results stream refusing a second result for
// a task (one message per subject, discard new).
func alreadyRecorded(err error) bool {
	return strings.Contains(errorDescription(err), "maximum messages per subject exceeded")
}

// errorDescription is the description of a negative PubAck, else "".
func errorDescription(err error) string {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Description
	}
	var pe *pubAckError
	if errors.As(err, &pe) {
		return pe.Description
	}
	return ""
}
