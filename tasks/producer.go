package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// ErrClosed means the producer was closed before the result arrived.
var ErrClosed = errors.New("tasks: producer closed")

// ProducerOptions configures a Producer.
type ProducerOptions struct {
	// Owner is the token results are addressed to. Defaults to a new unique
	// id, so each producer hears only its own results.
	Owner string
	// Objects stores arguments over the inline threshold and reads results
	// stored there. Without it such values are refused.
	Objects *objects.Store
	// MaxValueSize refuses larger arguments at submit. Defaults to 1 GiB.
	MaxValueSize int64
	// MaxPending bounds submissions awaiting their PubAck; Submit blocks
	// while it is reached, until its context ends (its future then fails
	// with the context's error), and blocked Submits go in the order they
	// came. Defaults to 4096.
	MaxPending int
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	// sweep times the result safety net (see Producer.sweep); zero fields
	// take the defaults. Tests shorten or stretch it (export_test.go).
	sweep sweepTiming
	// submitRetry overrides submitRetryDelays; tests shorten it
	// (export_test.go).
	submitRetry []time.Duration
}

// sweepTiming is the timing of the result safety net.
type sweepTiming struct {
	every    time.Duration // how often the sweep runs; defaults to 250 ms
	age      time.Duration // first look at a waiting future; defaults to 5 s
	maxEvery time.Duration // cap of the doubling looks; defaults to 1 min
	budget   int           // lookups per sweep at most; defaults to 100
}

// withDefaults fills zero fields.
func (t sweepTiming) withDefaults() sweepTiming {
	if t.every <= 0 {
		t.every = 250 * time.Millisecond
	}
	if t.age <= 0 {
		t.age = 5 * time.Second
	}
	if t.maxEvery <= 0 {
		t.maxEvery = time.Minute
	}
	if t.budget <= 0 {
		t.budget = 100
	}
	return t
}

// Producer submits tasks and receives their results. It is safe for
// concurrent use.
type Producer struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	owner   string
	store   *objects.Store
	maxSize int64
	// retryDelays paces the resubmissions of a task (submitRetryDelays).
	retryDelays []time.Duration
	inline      int
	log         *slog.Logger
	view        *registry.View
	// idlePools holds the pools said to have no live worker (once each).
	idlePools sync.Map
	results   jetstream.Stream
	cancels   jetstream.KeyValue

	// idPrefix starts the ids of this producer's tasks, and idSeq numbers
	// them (taskid.go).
	idPrefix string
	idSeq    atomic.Uint64

	mu      sync.Mutex
	pending pendingTable // by task number
	// waiting lists the pending futures oldest first, so a sweep walks
	// only those old enough to be due (see sweep).
	waiting waitList
	// foreign holds the futures watched by subject (Future by id), with
	// their subscriptions, until they resolve or the producer closes.
	foreign   map[*Future]*nats.Subscription
	closed    bool
	sub       *nats.Subscription
	leaderSub *nats.Subscription // FRAY_RESULTS leader elections, if visible
	pub       *asyncPublisher
	ctx       context.Context // ends with Close
	stop      context.CancelFunc
	sweepDone chan struct{}
	watchers  sync.WaitGroup // foreign futures' lookups
	retrying  sync.WaitGroup // submissions waiting to be sent again

	leaderChanges atomic.Uint64 // FRAY_RESULTS leader elections seen

	// expect is what onResult, on the results subscription's goroutine
	// only, expects a result record to say (see Future.resolveRecord).
	expect Result
}

// NewProducer subscribes to the producer's results and starts watching the
// worker registry. Close releases both.
func NewProducer(ctx context.Context, nc *nats.Conn, o ProducerOptions) (*Producer, error) {
	if o.Owner == "" {
		o.Owner = newOwner()
	}
	if !taskwire.ValidToken(o.Owner) {
		return nil, fmt.Errorf("%w: owner %q", ErrBadName, o.Owner)
	}
	if o.MaxValueSize == 0 {
		o.MaxValueSize = 1 << 30
	}
	if o.MaxPending == 0 {
		o.MaxPending = 4096
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	p := &Producer{nc: nc, owner: o.Owner, store: o.Objects, maxSize: o.MaxValueSize, log: o.Logger,
		idPrefix: newIDPrefix(), foreign: map[*Future]*nats.Subscription{}, inline: objects.DefaultInlineThreshold,
		retryDelays: submitRetryDelays}
	if o.submitRetry != nil {
		p.retryDelays = o.submitRetry
	}
	if o.Objects != nil {
		p.inline = o.Objects.InlineThreshold()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	p.js = js
	if p.pub, err = newAsyncPublisher(nc, o.MaxPending, 30*time.Second); err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	if p.results, err = js.Stream(ctx, broker.StreamResults); err != nil {
		p.pub.close()
		return nil, fmt.Errorf("tasks: results stream: %w (is the cluster provisioned?)", err)
	}
	if rp := p.results.CachedInfo().Config.RePublish; rp == nil || rp.Destination != broker.SubjectStoredPrefix+">" {
		p.pub.close()
		return nil, fmt.Errorf("tasks: %w: stream %s does not republish stored results to %s>; restart fray-broker (or run broker.Provision) with this fray version",
			broker.ErrLayoutTooOld, broker.StreamResults, broker.SubjectStoredPrefix)
	}
	if p.cancels, err = broker.KeyValue(ctx, js, broker.BucketCancels); err != nil {
		p.pub.close()
		return nil, fmt.Errorf("tasks: cancel bucket: %w", err)
	}
	if p.sub, err = subscribeAllowed(ctx, nc, taskwire.StoredSubject(p.owner, "*"), p.onResult); err != nil {
		p.pub.close()
		return nil, fmt.Errorf("tasks: subscribe to results: %w", err)
	}
	p.sub.SetPendingLimits(-1, -1)
	// On a cluster, a stream leader that steps down between storing a
	// result and republishing it leaves the result unannounced: look up
	// every waiting future when FRAY_RESULTS elects a leader. Best effort:
	// an account may not see advisories, and the sweep's safety net stays.
	p.leaderSub, _ = nc.Subscribe("$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED."+broker.StreamResults, func(*nats.Msg) {
		p.leaderChanges.Add(1)
	})
	if p.view, err = registry.Shared(ctx, nc); err != nil {
		p.sub.Unsubscribe()
		if p.leaderSub != nil {
			p.leaderSub.Unsubscribe()
		}
		p.pub.close()
		return nil, fmt.Errorf("tasks: %w", err)
	}
	wctx, stop := context.WithCancel(context.Background())
	p.ctx, p.stop = wctx, stop
	p.sweepDone = make(chan struct{})
	go p.sweep(wctx, o.sweep.withDefaults())
	return p, nil
}

// sweep recovers results the live subscriptions missed: after a reconnect
// (results published while disconnected never reach a core subscriber)
// every pending and foreign future is looked up in the stream, and futures
// pending longer than sweepAge (5 s) are looked up at doubling intervals
// (10, 20, 40 s, then every maxCheckEvery, 1 min) as a safety net, at most
// 100 per sweep (see sweepDue). A foreign future is also looked up once more sweepEvery after it
// started watching: a result routed before its subscription existed can be
// stored just after its first lookup (the stream stores asynchronously), and
// would otherwise wait for the safety net.
func (p *Producer) sweep(ctx context.Context, timing sweepTiming) {
	defer close(p.sweepDone)
	t := time.NewTicker(timing.every)
	defer t.Stop()
	s := p.newSweeper(timing)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if !p.nc.IsConnected() {
				continue
			}
			for _, f := range p.sweepDue(&s, now) {
				if ctx.Err() != nil {
					return
				}
				p.check(ctx, f)
			}
		}
	}
}

// sweeper is the state a producer's sweep keeps between its runs.
type sweeper struct {
	timing                sweepTiming
	reconnects, elections uint64
	lastFull              time.Time
	// rechecking: after a reconnect or an election every waiting future
	// is due, young ones too, until a walk finds no more than the budget.
	rechecking bool
}

func (p *Producer) newSweeper(timing sweepTiming) sweeper {
	return sweeper{timing: timing, reconnects: p.nc.Stats().Reconnects, elections: p.leaderChanges.Load(), lastFull: time.Now()}
}

// sweepDue returns the futures a sweep at now looks up, and counts them as
// looked up. A future is due when its own check is: first sweepAge after
// submission, then at doubling intervals up to maxEvery, so thousands of
// long-queued tasks cost few lookups; after a reconnect (results stored
// meanwhile reached no subscriber) or a results leader election (see
// NewProducer), every waiting future is. At most timing.budget are taken
// per sweep, oldest first, so a long queue does not load the broker with
// lookups: those left stay due, and the next sweep takes them.
func (p *Producer) sweepDue(s *sweeper, now time.Time) []*Future {
	sweepAge := s.timing.age
	r, el := p.nc.Stats().Reconnects, p.leaderChanges.Load()
	reconnected := r != s.reconnects || el != s.elections
	full := reconnected || s.rechecking || now.Sub(s.lastFull) >= sweepAge
	if full {
		s.reconnects, s.elections, s.lastFull = r, el, now
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if reconnected {
		s.rechecking = true
		for f := p.waiting.oldest; f != nil; f = f.newer {
			f.nextCheck = now
		}
		for f := range p.foreign {
			f.nextCheck = now
		}
	}
	isDue := func(f *Future) bool {
		if f.nextCheck.IsZero() {
			f.nextCheck = f.submitted.Add(sweepAge)
		}
		return !now.Before(f.nextCheck)
	}
	var due []*Future
	more := false // due futures left for the next sweep
	if full {
		// Oldest first: past the first future younger than sweepAge, none
		// is due but while rechecking.
		for f := p.waiting.oldest; f != nil; f = f.newer {
			if !s.rechecking && now.Sub(f.submitted) < sweepAge {
				break
			}
			if isDue(f) {
				if more = len(due) == s.timing.budget; more {
					break
				}
				due = append(due, f)
			}
		}
	}
	for f := range p.foreign {
		switch {
		case full && isDue(f):
		case !f.rechecked && now.Sub(f.submitted) >= s.timing.every:
		default:
			continue
		}
		if more = more || len(due) == s.timing.budget; more {
			break
		}
		f.rechecked = true
		due = append(due, f)
	}
	for _, f := range due {
		f.checkEvery = min(max(2*f.checkEvery, sweepAge), s.timing.maxEvery)
		f.nextCheck = now.Add(f.checkEvery)
	}
	if full && !more {
		s.rechecking = false
	}
	if more {
		s.lastFull = time.Time{} // the next sweep goes on with the rest
	}
	return due
}

// check looks f's result up in the stream and resolves f with it, unless f
// resolved since the sweep found it due: a sweep of thousands of waiting
// futures takes seconds of lookups, during which most of them get their
// result from the subscription, and a resolved future needs no lookup.
// It reports whether it looked up.
func (p *Producer) check(ctx context.Context, f *Future) bool {
	if f.isResolved() {
		return false
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	res, err := p.lookup(lctx, taskwire.ResultSubject(f.owner, f.id))
	cancel()
	if err == nil {
		if !f.foreign {
			p.forget(f.id)
		}
		f.resolve(res, nil)
	}
	return true
}

// Owner is the token this producer's results are addressed to.
func (p *Producer) Owner() string { return p.owner }

// Workers is the producer's view of the pool directory (shared with the
// other users of its connection).
func (p *Producer) Workers() *registry.View { return p.view }

// Close stops receiving results; futures still waiting resolve with
// ErrClosed.
func (p *Producer) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	pending := p.pending.all()
	p.pending = pendingTable{}
	p.waiting = waitList{}
	var foreign []*Future
	for f, s := range p.foreign {
		s.Unsubscribe()
		foreign = append(foreign, f)
	}
	p.mu.Unlock()
	p.sub.Unsubscribe()
	if p.leaderSub != nil {
		p.leaderSub.Unsubscribe()
	}
	p.stop()      // resubmissions waiting out a delay give up
	p.pub.close() // blocked and pending publishes fail with ErrClosed
	p.retrying.Wait()
	p.view.Release()
	if p.sweepDone != nil {
		<-p.sweepDone
	}
	for _, f := range pending {
		f.resolve(nil, ErrClosed)
	}
	for _, f := range foreign {
		f.resolve(nil, ErrClosed)
	}
	p.watchers.Wait()
}

// Submit queues a call of fn with arg and returns its future at once.
// Submission errors (bad options, unknown function, oversized value, full
// queue) resolve the future with the error. An arg of type objects.Ref is
// passed by reference: the worker fetches and decodes the object.
func (p *Producer) Submit(ctx context.Context, fn string, arg any, opts ...Option) *Future {
	seq := p.idSeq.Add(1)
	f := newFuture(p, futureID(p.owner, p.idPrefix, seq), len(p.owner), fn)
	f.seq = seq
	if err := p.submit(ctx, f, fn, arg, opts); err != nil {
		f.resolve(nil, err)
	}
	return f
}

func (p *Producer) submit(ctx context.Context, f *Future, fn string, arg any, opts []Option) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tasks: submit %s: %w", fn, err) // a caller that gave up queues nothing
	}
	o, err := buildOptions(opts)
	if err != nil {
		return err
	}
	if err := taskwire.CheckFunction(fn); err != nil {
		return err
	}
	if served, live := p.view.Serves(o.pool, fn); live && !served {
		return fmt.Errorf("%w: no live worker of pool %q registers %q (they register: %s)",
			ErrUnknownFunction, o.pool, fn, strings.Join(p.view.Functions(o.pool), ", "))
	} else if !live {
		// Queued all the same: a worker may start. Said once per pool, so
		// that a mistyped pool does not wait in silence.
		if _, said := p.idlePools.LoadOrStore(o.pool, true); !said {
			p.log.Warn("tasks: pool has no live workers: its tasks wait in its queue until one starts", "pool", o.pool)
		}
	}
	// The task's message names it (Nats-Msg-Id); the record says what to
	// run, and leaves out what a worker assumes.
	t := taskwire.Task{V: taskwire.TaskVersion, Fn: fn, TimeoutMS: o.timeout.Milliseconds(),
		Retries: o.retries, BackoffMS: o.backoff.Milliseconds(), SubmittedMS: time.Now().UnixMilli()}
	if o.maxDeliveries != taskwire.DefaultMaxDeliveries {
		t.MaxDeliveries = o.maxDeliveries
	}
	switch a := arg.(type) {
	case objects.Ref:
		t.ArgRef = &a
	case *objects.Ref:
		t.ArgRef = a
	default:
		raw, err := objects.Marshal(arg)
		if err != nil {
			return fmt.Errorf("%w: argument of %s: %v", ErrBadInput, fn, err)
		}
		if int64(len(raw)) > p.maxSize {
			return fmt.Errorf("%w: argument of %s is %d bytes, over the %d-byte limit (MaxValueSize)", ErrTooLarge, fn, len(raw), p.maxSize)
		}
		if len(raw) > p.inline {
			if p.store == nil {
				return fmt.Errorf("%w: argument of %s is %d bytes, over the %d-byte inline limit, and no object store is configured", ErrTooLarge, fn, len(raw), p.inline)
			}
			ref, err := p.store.PutBytes(ctx, raw)
			if err != nil {
				return fmt.Errorf("tasks: store argument of %s: %w", fn, err)
			}
			t.ArgRef = &ref
		} else {
			t.Arg = raw
		}
	}
	sub := submissions.Get().(*submission)
	data, err := taskwire.AppendTask(sub.msg.Data[:0], &t)
	if err != nil {
		return err
	}
	sub.p, sub.f, sub.fn, sub.tries = p, f, fn, 0
	sub.holds.Store(2)
	sub.msg.Subject, sub.msg.Data = taskSubject(o.pool), data
	sub.msgID[0] = f.fid
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	// Taken under p.mu, so p.waiting is in submission order.
	f.submitted = time.Now()
	p.pending.put(f)
	p.waiting.push(f)
	p.mu.Unlock()
	// A submission that met no JetStream (a broker restarting) or got no
	// PubAck is sent again, with the same Nats-Msg-Id so the stream
	// stores it once, while the retry budget lasts.
	if err := p.pub.publish(ctx, &sub.msg, nil, sub); err != nil {
		p.forget(f.id)
		return fmt.Errorf("tasks: publish %s: %w", fn, err)
	}
	sub.release()
	return nil
}

// submission is one task's publish awaiting its PubAck, and the message it
// sends: one record per task for what would otherwise be several closures.
// A submission acknowledged at the first try goes back to the submissions
// pool, its message, header map and buffer with it, once both the Submit
// that sent it and its PubAck are done with it (holds); one that was sent
// again, or failed, is left to the garbage collector.
type submission struct {
	p     *Producer
	f     *Future
	msg   nats.Msg
	msgID []string // msg.Header[Nats-Msg-Id]
	fn    string
	tries int // resends so far
	holds atomic.Int32
}

var submissions = sync.Pool{New: func() any {
	s := &submission{msgID: make([]string, 1)}
	s.msg.Header = nats.Header{jetstream.MsgIDHeader: s.msgID}
	return s
}}

// maxPooledData bounds the task buffer a pooled submission keeps.
const maxPooledData = 4 << 10

// release drops one hold; the last puts the submission back in the pool.
func (s *submission) release() {
	if s.holds.Add(-1) != 0 {
		return
	}
	s.p, s.f, s.fn, s.msg.Reply, s.msgID[0] = nil, nil, "", "", ""
	if cap(s.msg.Data) > maxPooledData {
		s.msg.Data = nil
	}
	submissions.Put(s)
}

// fail resolves the future with err unless its result already did.
func (s *submission) fail(err error) {
	if f := s.p.forget(s.f.id); f != nil {
		f.resolve(nil, err)
	}
}

// pubAcked settles the PubAck: queued, refused, or sent again after a delay
// when the error is transient and the retry budget lasts.
func (s *submission) pubAcked(err error) {
	if err == nil {
		s.f.markQueued()
		if s.tries == 0 {
			s.release()
		}
		return
	}
	if !transientPublishError(err) || s.tries >= len(s.p.retryDelays) {
		s.fail(mapPublishError(err))
		return
	}
	delay := s.p.retryDelays[s.tries]
	s.tries++
	p := s.p
	p.retrying.Add(1)
	go func() { // not on the PubAck goroutine: publish may block for a slot
		defer p.retrying.Done()
		select {
		case <-time.After(delay):
		case <-p.ctx.Done():
			s.fail(ErrClosed)
			return
		}
		if err := p.pub.publish(p.ctx, &s.msg, nil, s); err != nil {
			if p.ctx.Err() != nil {
				err = ErrClosed // the producer closed while it waited for a slot
			}
			s.fail(fmt.Errorf("tasks: publish %s: %w", s.fn, err))
		}
	}()
}

// submitRetryDelays paces the resubmission of a task whose publish met no
// JetStream or no PubAck: about 8 s in all, enough for a broker restart
// (the default of ProducerOptions.submitRetry).
var submitRetryDelays = []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}

// transientPublishError reports errors that a resubmission may cure.
func transientPublishError(err error) bool {
	return errors.Is(err, errPubAckTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		strings.Contains(errorDescription(err), "temporarily unavailable")
}

// forget takes the pending future of task id, if any, off the pending
// futures.
func (p *Producer) forget(id string) *Future {
	seq, ok := taskSeq(p.idPrefix, id)
	if !ok {
		return nil // not a task of this producer's
	}
	p.mu.Lock()
	f := p.pending.get(seq)
	if f != nil {
		p.pending.remove(f)
		p.waiting.remove(f)
	}
	p.mu.Unlock()
	return f
}

// mapPublishError maps the stream's limit errors onto ErrQueueFull.
func mapPublishError(err error) error {
	if errors.Is(err, broker.ErrPermissionDenied) {
		return fmt.Errorf("tasks: submit: %w", err)
	}
	if d := errorDescription(err); d != "" {
		if strings.Contains(d, "maximum bytes exceeded") || strings.Contains(d, "maximum messages exceeded") ||
			strings.Contains(d, "resource limits exceeded") || strings.Contains(d, "insufficient resources") {
			return fmt.Errorf("%w: %s (stream %s limits; retry later, or raise fray-broker --queue-max-bytes)", ErrQueueFull, d, broker.StreamTasks)
		}
	}
	return fmt.Errorf("tasks: submit: %w", err)
}

func (p *Producer) onResult(m *nats.Msg) {
	id := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	f := p.forget(id)
	if f == nil {
		return // a duplicate, or a result for a producer before a restart
	}
	// The record is expected to name f's id and function, and the pool
	// and worker of the last result: those strings are not copied.
	like := &p.expect
	like.ID, like.Fn = f.id, f.fn
	if res := f.resolveRecord(m.Data, like); res != nil {
		like.Pool, like.Worker = res.Pool, res.Worker
	}
}

// Future returns the future with the given id, from this or any other
// producer, while its result is retained.
func (p *Producer) Future(fid string) (*Future, error) {
	owner, id, err := taskwire.ParseFutureID(fid)
	if err != nil {
		return nil, err
	}
	if seq, ok := taskSeq(p.idPrefix, id); ok && owner == p.owner {
		p.mu.Lock()
		f := p.pending.get(seq)
		p.mu.Unlock()
		if f != nil {
			return f, nil
		}
	}
	return &Future{p: p, fid: fid, owner: owner, id: id, foreign: true}, nil
}

// watchForeign subscribes to a future's result subject, then looks the
// result up in the stream, so it resolves whether the result is already
// stored or still to come.
func (p *Producer) watchForeign(f *Future) {
	subj := taskwire.ResultSubject(f.owner, f.id)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		f.resolve(nil, ErrClosed)
		return
	}
	sub, err := p.nc.Subscribe(taskwire.StoredSubject(f.owner, f.id), func(m *nats.Msg) {
		f.resolveRecord(m.Data, nil)
	})
	if err == nil {
		f.submitted = time.Now()
		p.foreign[f] = sub
		p.watchers.Add(1)
	}
	p.mu.Unlock()
	if err != nil {
		f.resolve(nil, fmt.Errorf("tasks: subscribe %s: %w", taskwire.StoredSubject(f.owner, f.id), err))
		return
	}
	go func() {
		defer p.watchers.Done()
		defer func() {
			p.mu.Lock()
			delete(p.foreign, f)
			p.mu.Unlock()
			sub.Unsubscribe()
		}()
		// A future of an owner whose results this user may not read fails
		// here, naming the subject and the user, instead of never resolving.
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
		defer cancel()
		if err := broker.Verify(ctx, p.nc, sub); errors.Is(err, broker.ErrPermissionDenied) {
			f.resolve(nil, fmt.Errorf("tasks: result of %s: %w", f.ID(), err))
			return
		}
		res, err := p.lookup(ctx, subj)
		switch {
		case err == nil:
			f.resolve(res, nil)
		case p.ctx.Err() != nil:
			f.resolve(nil, ErrClosed)
		case !errors.Is(err, ErrNoResult):
			// A transient failure (broker restarting): the sweep looks
			// again; the subscription still hears a result published now.
			p.log.Warn("look up a future's result; will retry", "future", f.ID(), "err", err)
		}
		<-f.doneChan() // by the subscription, the sweep, or Close
	}()
}

// lookup fetches the first result stored on subj.
func (p *Producer) lookup(ctx context.Context, subj string) (*Result, error) {
	// The last message of the subject is its one result. Asked by subject
	// (a direct get on $JS.API.DIRECT.GET.FRAY_RESULTS.<subject>), so that
	// fray auth's roles can let a user read only its own owner's results.
	msg, err := p.results.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrNoResult
	}
	if err != nil {
		return nil, fmt.Errorf("tasks: look up %s: %w", subj, err)
	}
	return taskwire.DecodeResult(msg.Data)
}

// Lookup returns a future's stored result without waiting: ErrNoResult when
// none is stored (the task is still queued or running, or the result
// expired).
func (p *Producer) Lookup(ctx context.Context, fid string) (*Result, error) {
	owner, id, err := taskwire.ParseFutureID(fid)
	if err != nil {
		return nil, err
	}
	return p.lookup(ctx, taskwire.ResultSubject(owner, id))
}

func (p *Producer) cancel(ctx context.Context, f *Future) error {
	if _, err := p.cancels.Put(ctx, f.id, []byte(f.owner)); err != nil {
		return fmt.Errorf("tasks: cancel %s: %w", f.ID(), err)
	}
	res := Result{V: taskwire.ResultVersion, ID: f.id, FinishedMS: time.Now().UnixMilli(),
		Error: &ErrorInfo{Kind: KindCancelled, Fn: f.fn, Message: "cancelled by the caller"}}
	data, err := objects.Marshal(&res)
	if err != nil {
		return err
	}
	if _, err := p.js.Publish(ctx, taskwire.ResultSubject(f.owner, f.id), data); err != nil && !alreadyRecorded(err) {
		return fmt.Errorf("tasks: record cancellation of %s: %w", f.ID(), err)
	}
	return nil
}

// subscribeAllowed subscribes and waits for the server's verdict, so that a
// subscription the user may not make fails here, naming the subject and
// the user, instead of silently never receiving.
func subscribeAllowed(ctx context.Context, nc *nats.Conn, subj string, cb nats.MsgHandler) (*nats.Subscription, error) {
	sub, err := broker.Subscribe(ctx, nc, subj, cb)
	if errors.Is(err, broker.ErrPermissionDenied) {
		return nil, fmt.Errorf("tasks: %w; stored results arrive there (fray auth's producer role may subscribe to its own)", err)
	}
	return sub, err
}
