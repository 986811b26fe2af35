package actors

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
)

// target is the client's view of one actor: where to send calls and the
// newest instance epoch seen in a reply.
type target struct {
	ns, name, key, subject string
	epoch                  atomic.Uint64
	// Guarded by mux.mu: the barrier in flight to the actor, if any, and
	// when the sweep may send the next one after one was refused.
	barrier     *barrier
	nextBarrier time.Time
	barrierWait time.Duration
}

// absentLimit is how long a call waits for the actor's missing record to
// come back before it fails. A missing record is not yet a lost actor: a
// broker that restarts after more than the lease drops the expired lease
// keys; each live host writes its key again at its next renewal, and the
// supervisor's sweep restarts an actor whose host is gone after two leases
// and a ping (which writes the record too). The standing record tells the
// two apart: an actor that ended (stopped, dead) has none, and its calls
// fail after absentGrace; one that may be coming back has one, and its
// calls wait four of its host's leases, past the supervisor's verdict.
func (m *mux) absentLimit(t *target) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	st, _, err := getRecord(ctx, m.c.kv, standingKey(t.ns, t.name))
	cancel()
	lease := defaultLease
	switch {
	case errors.Is(err, ErrNotFound):
		return absentGrace
	case err == nil && st.LeaseMS > 0:
		lease = time.Duration(st.LeaseMS) * time.Millisecond
	}
	return max(absentGrace, 4*lease)
}

// defaultLease is the hosts' default lease TTL, assumed when the standing
// record does not say (or cannot be read).
const defaultLease = 10 * time.Second

func (t *target) seen(epoch uint64) {
	for {
		cur := t.epoch.Load()
		if epoch <= cur || t.epoch.CompareAndSwap(cur, epoch) {
			return
		}
	}
}

// mux multiplexes every call's reply onto one wildcard inbox subscription,
// like nats.go's request muxing, and watches calls that wait too long.
type mux struct {
	c       *Client
	prefix  string
	sub     *nats.Subscription
	unwatch func()   // stops the permission-error watch
	targets sync.Map // "ns/name" -> *target

	// sendMu is held (read) by each send from reading the generation until
	// its request is handed to the connection, and (write) by the sweep to
	// move to the next generation: so every call of an earlier generation
	// is published before any barrier of a later one names it.
	sendMu sync.RWMutex

	mu       sync.Mutex
	pending  map[string]*Future
	barriers map[string]*barrier // by token, like pending
	next     uint64
	closed   bool
	// gen counts the reconnects of the connection the sweep has seen; a
	// call sent in an earlier generation may have lost its request or its
	// reply with the connection (core NATS delivers at most once).
	gen        atomic.Uint64
	reconnects uint64 // nc.Stats().Reconnects at the last sweep

	stop     chan struct{}
	finished chan struct{}
}

func newMux(c *Client) (*mux, error) {
	m := &mux{c: c, prefix: c.nc.NewInbox() + ".", pending: map[string]*Future{}, barriers: map[string]*barrier{},
		stop: make(chan struct{}), finished: make(chan struct{}), reconnects: c.nc.Stats().Reconnects}
	sub, err := c.nc.Subscribe(m.prefix+"*", m.onReply)
	if err != nil {
		return nil, fmt.Errorf("actors: reply subscription: %w", err)
	}
	// Replies can burst (pipelined calls); never drop them.
	_ = sub.SetPendingLimits(-1, -1)
	m.sub = sub
	m.unwatch = broker.OnPermissionDenied(c.nc, m.denied)
	go m.sweep()
	return m, nil
}

// denied fails at once the calls whose request the server refused: no
// reply will come.
func (m *mux) denied(e *broker.PermissionError) {
	if e.Op != "publish" {
		return
	}
	var refused []*Future
	m.mu.Lock()
	for token, f := range m.pending {
		if f.t.subject == e.Subject {
			delete(m.pending, token)
			refused = append(refused, f)
		}
	}
	m.mu.Unlock()
	for _, f := range refused {
		f.complete(fmt.Errorf("actors: call %s: %w", f.method, e))
	}
}

func (m *mux) close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	pend := m.pending
	m.pending = map[string]*Future{}
	m.mu.Unlock()
	close(m.stop)
	<-m.finished
	m.unwatch()
	err := m.sub.Unsubscribe()
	for _, f := range pend {
		f.complete(fmt.Errorf("%w: client closed", ErrActorUnavailable))
	}
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
		err = nil
	}
	return err
}

func (m *mux) target(ns, name string) *target {
	k := ns + "/" + name
	if t, ok := m.targets.Load(k); ok {
		return t.(*target)
	}
	t, _ := m.targets.LoadOrStore(k, &target{ns: ns, name: name, key: recordKey(ns, name), subject: callSubject(ns, name)})
	return t.(*target)
}

// Future is the pending result of a call.
type Future struct {
	m        *mux
	t        *target
	method   string
	data     []byte
	token    string
	epoch    uint64 // instance the call went to (0: unknown)
	sent     time.Time
	deadline time.Time
	retries  int
	backoff  time.Duration
	// absentSince is when the sweep first found the actor's record missing
	// while the call waited (zero: not missing). Only the sweep uses it.
	absentSince time.Time
	// gen is the mux's connection generation when the call was last sent,
	// or when a barrier last found it running.
	gen uint64

	done       chan struct{}
	reply      []byte
	err        error
	replyEpoch uint64 // set by Get
}

func failedFuture(method string, err error) *Future {
	f := &Future{method: method, done: make(chan struct{})}
	f.complete(err)
	return f
}

func (f *Future) complete(err error) {
	f.err = err
	close(f.done)
}

// Done is closed when the result (or error) is in.
func (f *Future) Done() <-chan struct{} { return f.done }

// Get waits for the call's result and decodes it into out (a pointer, or nil
// to discard). It returns a *RemoteError for a method error or panic, or
// ErrActorUnavailable when the instance died while the call may have been
// running (and no retry remains), the call was lost with the
// connection to the broker, or no reply came by the call's deadline or
// ctx's (wrapping context.DeadlineExceeded). When ctx is cancelled first it
// returns ctx's error. The call itself still runs to its own deadline.
func (f *Future) Get(ctx context.Context, out any) error {
	select {
	case <-f.done:
	case <-ctx.Done():
		// Prefer a result that is already in.
		select {
		case <-f.done:
		default:
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return ctx.Err()
			}
			who := "the actor"
			if f.t != nil {
				who = f.t.ns + "/" + f.t.name
			}
			return fmt.Errorf("%w: no reply from %s to %s by the deadline of Get's context: %w",
				ErrActorUnavailable, who, f.method, context.DeadlineExceeded)
		}
	}
	if f.err != nil {
		return f.err
	}
	var r replyMsg
	if err := objects.Unmarshal(f.reply, &r); err != nil {
		return fmt.Errorf("actors: malformed reply to %s: %w", f.method, err)
	}
	if f.t != nil {
		f.t.seen(r.Epoch)
	}
	f.replyEpoch = r.Epoch
	if r.Err != nil {
		return r.Err.remote(f.method, r.Err.Host)
	}
	if out != nil && len(r.Result) > 0 {
		if err := objects.Unmarshal(r.Result, out); err != nil {
			return fmt.Errorf("actors: result of %s: %w", f.method, err)
		}
	}
	return nil
}

// call sends one call.
func (m *mux) call(ctx context.Context, t *target, method string, arg any, op string) *Future {
	if method == "" {
		return failedFuture(method, fmt.Errorf("%w: empty method name (actor %s/%s)", ErrNoSuchMethod, t.ns, t.name))
	}
	var raw objects.RawMessage
	if arg != nil {
		b, err := objects.Marshal(arg)
		if err != nil {
			return failedFuture(method, err)
		}
		raw = b
	}
	data, err := objects.Marshal(callMsg{V: 1, Method: method, Arg: raw, Op: op})
	if err != nil {
		return failedFuture(method, err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(m.c.opts.CallTimeout)
	}
	f := &Future{m: m, t: t, method: method, data: data, deadline: deadline,
		epoch: t.epoch.Load(), done: make(chan struct{})}
	m.send(f)
	return f
}

func (m *mux) send(f *Future) {
	// Read before publishing (and before the sweep can see the call): a
	// reconnect in between only makes the call look sent before it, and
	// a barrier then settles whether it was lost (see sweep).
	m.sendMu.RLock()
	defer m.sendMu.RUnlock()
	gen := m.gen.Load()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		f.complete(fmt.Errorf("%w: client closed", ErrActorUnavailable))
		return
	}
	if f.token == "" {
		m.next++
		f.token = strconv.FormatUint(m.next, 36)
	}
	f.sent, f.gen, f.absentSince = time.Now(), gen, time.Time{}
	m.pending[f.token] = f
	m.mu.Unlock()
	if err := m.c.nc.PublishRequest(f.t.subject, m.prefix+f.token, f.data); err != nil {
		if m.take(f) {
			f.complete(fmt.Errorf("actors: send %s: %w", f.method, err))
		}
	}
}

// take removes f from pending; true if the caller now owns it.
func (m *mux) take(f *Future) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending[f.token] != f {
		return false
	}
	delete(m.pending, f.token)
	return true
}

func (m *mux) onReply(msg *nats.Msg) {
	token := msg.Subject[len(m.prefix):]
	m.mu.Lock()
	f := m.pending[token]
	delete(m.pending, token)
	if f == nil {
		if b := m.barriers[token]; b != nil {
			m.onBarrierReplyLocked(b, msg) // unlocks
			return
		}
	}
	m.mu.Unlock()
	if f == nil {
		return // late reply of a call already given up
	}
	if len(msg.Data) == 0 && msg.Header != nil && msg.Header.Get("Status") == "503" {
		// No instance subscribed: the call never reached one. Wait for the
		// next instance and deliver it there.
		go m.redeliver(f)
		return
	}
	f.reply = msg.Data
	close(f.done)
}

// absentGrace is the least time a call waits for a missing record to
// reappear (a supervisor recreating it, a host taking back its lease)
// before failing; see target.absentLimit.
const absentGrace = 3 * time.Second

// redeliver owns f (not pending), refused with no responders: it waits for
// a ready instance newer than f.epoch and sends f there, or sends it again
// to the same one after a backoff, or fails it at its deadline.
func (m *mux) redeliver(f *Future) {
	var absentSince time.Time
	waited := false
	for {
		if time.Now().After(f.deadline) {
			f.complete(fmt.Errorf("%w: %s/%s has no serving instance (call %s, deadline passed): %w",
				ErrActorUnavailable, f.t.ns, f.t.name, f.method, context.DeadlineExceeded))
			return
		}
		select {
		case <-m.stop:
			f.complete(fmt.Errorf("%w: client closed", ErrActorUnavailable))
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		rec, _, err := getRecord(ctx, m.c.kv, f.t.key)
		cancel()
		switch {
		case errors.Is(err, ErrNotFound):
			if absentSince.IsZero() {
				absentSince = time.Now()
			} else if time.Since(absentSince) > m.absentLimit(f.t) {
				f.complete(fmt.Errorf("%w: %s/%s: %w", ErrActorUnavailable, f.t.ns, f.t.name, ErrNotFound))
				return
			}
		case err != nil:
			// transient (broker reconnecting): retry until the deadline
		case terminal(rec.State):
			f.complete(fmt.Errorf("%w: %s/%s is %s: %s", ErrActorUnavailable, f.t.ns, f.t.name, rec.State, rec.Error))
			return
		case rec.State == StateReady && (f.epoch == 0 || rec.Epoch > f.epoch):
			f.epoch = rec.Epoch
			f.backoff = 0
			m.send(f)
			return
		case rec.State == StateReady && rec.Epoch == f.epoch && waited:
			// The instance that refused the call still holds the lease: it
			// is subscribing again (its host reconnecting after a broker
			// restart), or its host died and the lease has not run out
			// yet. The call never reached it, so sending it again cannot
			// run it twice; the backoff, kept growing, paces the resends.
			m.send(f)
			return
		default:
			absentSince = time.Time{}
		}
		f.backoff = min(max(2*f.backoff, 10*time.Millisecond), 200*time.Millisecond)
		select {
		case <-m.stop:
		case <-time.After(min(f.backoff, time.Until(f.deadline)+time.Millisecond)):
		}
		waited = true
	}
}

// sweep fails calls past their deadline; checks, for calls waiting longer
// than StaleAfter, that the instance they went to still lives; and after
// each reconnect of the connection sends each actor with calls sent before
// it a barrier, to learn which of them were lost (see barrier).
func (m *mux) sweep() {
	defer close(m.finished)
	every := min(m.c.opts.StaleAfter/2, 250*time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-tick.C:
		}
		now := time.Now()
		var expired []*Future
		stale := map[*target][]*Future{}
		suspect := map[*target][]*Future{}
		if rc := m.c.nc.Stats().Reconnects; rc != m.reconnects {
			m.reconnects = rc
			m.sendMu.Lock() // no send between reading the generation and publishing
			m.gen.Add(1)
			m.sendMu.Unlock()
		}
		m.mu.Lock()
		gen := m.gen.Load()
		for tok, f := range m.pending {
			switch {
			case now.After(f.deadline):
				delete(m.pending, tok)
				expired = append(expired, f)
				continue
			case f.gen < gen:
				suspect[f.t] = append(suspect[f.t], f)
			}
			// A suspect too: its barrier may wait behind a long call on an
			// instance that then dies.
			if now.Sub(f.sent) > m.c.opts.StaleAfter {
				stale[f.t] = append(stale[f.t], f)
			}
		}
		for _, b := range m.barriers {
			if suspect[b.t] == nil {
				m.dropBarrierLocked(b) // its calls are answered or settled
			}
		}
		var barriers []*barrier
		for t, fs := range suspect {
			if b := t.barrier; b != nil && b.gen == gen && now.Sub(b.sent) < barrierResend {
				continue // one in flight for this generation already
			}
			if now.Before(t.nextBarrier) {
				continue
			}
			barriers = append(barriers, m.newBarrierLocked(t, fs, gen))
		}
		m.mu.Unlock()
		for _, f := range expired {
			f.complete(fmt.Errorf("%w: no reply from %s/%s to %s by the call's deadline: %w",
				ErrActorUnavailable, f.t.ns, f.t.name, f.method, context.DeadlineExceeded))
		}
		for t, fs := range stale {
			m.checkAlive(t, fs)
		}
		for _, b := range barriers {
			m.sendBarrier(b)
		}
	}
}

// heldBy reports whether the actor's live instance (rec) has the call,
// learning on the way which epoch it went to: one whose record says it
// started before the call was (last) sent has it, and so does the actor's
// first instance (no restarts), which had no earlier one to take it,
// whatever the clocks of its host and of this process say. Called by the
// sweep only.
func (f *Future) heldBy(rec *Record) bool {
	if rec == nil || (rec.State != StateReady && rec.State != StatePlacing) {
		return false
	}
	if f.epoch < rec.Epoch && rec.StartedMS > 0 && rec.StartedMS < f.sent.UnixMilli() {
		f.epoch = rec.Epoch // sent after this instance started: it has the call
	}
	if f.epoch == rec.Epoch {
		return true
	}
	if f.epoch == 0 && (rec.StartedMS == 0 || rec.StartedMS <= f.sent.UnixMilli() || rec.Restarts == 0) {
		f.epoch = rec.Epoch
		return true
	}
	return false
}

// retryOrFail sends each lost call again while the actor (rec, nil when
// its record is gone) lives and the call's MaxTaskRetries allow, and fails
// the others with failure(f).
func (m *mux) retryOrFail(rec *Record, lost []*Future, failure func(*Future) error) {
	for _, f := range lost {
		if rec != nil && !terminal(rec.State) && f.retries < rec.MaxTaskRetries {
			f.retries++
			go m.redeliver(f)
			continue
		}
		f.complete(failure(f))
	}
}

func (m *mux) checkAlive(t *target, fs []*Future) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	rec, _, err := getRecord(ctx, m.c.kv, t.key)
	cancel()
	if err != nil && !errors.Is(err, ErrNotFound) {
		return // can't tell; look again next tick
	}
	var limit time.Duration
	if rec == nil {
		limit = m.absentLimit(t)
	}
	now := time.Now()
	var lost []*Future
	m.mu.Lock()
	for _, f := range fs {
		if m.pending[f.token] != f {
			continue
		}
		if rec == nil {
			// Its host may be taking back a lease that expired while the
			// broker was away: give it absentLimit.
			if f.absentSince.IsZero() {
				f.absentSince = now
			}
			if now.Sub(f.absentSince) < limit {
				continue
			}
		} else {
			f.absentSince = time.Time{}
		}
		if f.heldBy(rec) {
			continue
		}
		delete(m.pending, f.token)
		lost = append(lost, f)
	}
	m.mu.Unlock()
	why := "its record is gone"
	if rec != nil {
		why = fmt.Sprintf("now epoch %d, %s", rec.Epoch, rec.State)
	}
	m.retryOrFail(rec, lost, func(f *Future) error {
		return fmt.Errorf("%w: the instance (epoch %d) of %s/%s was lost while call %s may have been running (%s)",
			ErrActorUnavailable, f.epoch, t.ns, t.name, f.method, why)
	})
}
