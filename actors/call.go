package actors

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
)

// target is the client's view of one actor: where to send calls and the
// newest instance epoch seen in a reply.
type target struct {
	ns, name, key, subject string
	epoch                  atomic.Uint64
}

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
	targets sync.Map // "ns/name" -> *target

	mu      sync.Mutex
	pending map[string]*Future
	next    uint64
	closed  bool
	// server is the id of the broker server the connection was on at the
	// last sweep, switched when it last changed (a reconnect).
	server   string
	switched time.Time

	stop     chan struct{}
	finished chan struct{}
}

func newMux(c *Client) (*mux, error) {
	m := &mux{c: c, prefix: c.nc.NewInbox() + ".", pending: map[string]*Future{},
		stop: make(chan struct{}), finished: make(chan struct{}), server: c.nc.ConnectedServerId()}
	sub, err := c.nc.Subscribe(m.prefix+"*", m.onReply)
	if err != nil {
		return nil, fmt.Errorf("actors: reply subscription: %w", err)
	}
	// Replies can burst (pipelined calls); never drop them.
	_ = sub.SetPendingLimits(-1, -1)
	m.sub = sub
	go m.sweep()
	return m, nil
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
	// server is the broker server the call was last sent through ("": the
	// connection was down and buffered it for the reconnect).
	server string

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
// running (and no retry remains), the call was possibly lost with the
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
		return &RemoteError{Method: f.method, Message: r.Err.Message, Type: r.Err.Type, Host: r.Err.Host}
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
	// reconnect in between only makes the call look sent through the old
	// server (see sweep).
	server := m.c.nc.ConnectedServerId()
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
	f.sent, f.server = time.Now(), server
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

// absentGrace is how long a call waits for a missing record to reappear
// (a supervisor recreating it) before failing.
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
			} else if time.Since(absentSince) > absentGrace {
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

// reconnectGrace is how long after the client's connection moved to
// another broker server (a broker restart, a failover) a call sent through
// the old one may still get its reply (a host reconnecting later flushes
// replies it buffered) before it counts as possibly lost.
const reconnectGrace = 2 * time.Second

// sweep fails calls past their deadline, and checks, for calls waiting
// longer than StaleAfter, that the instance they went to still lives. A
// call sent through a broker server the connection has since left (core
// NATS delivers at most once: the request or its reply may have gone with
// it) and unanswered reconnectGrace after the switch is possibly lost:
// severed redelivers or fails it.
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
		severed := map[*target][]*Future{}
		m.mu.Lock()
		// Under m.mu: every pending call read its server before this.
		if cur := m.c.nc.ConnectedServerId(); cur != "" && cur != m.server {
			m.server, m.switched = cur, now
		}
		for tok, f := range m.pending {
			switch {
			case now.After(f.deadline):
				delete(m.pending, tok)
				expired = append(expired, f)
			case f.server != "" && f.server != m.server && now.Sub(m.switched) >= reconnectGrace:
				severed[f.t] = append(severed[f.t], f)
			case now.Sub(f.sent) > m.c.opts.StaleAfter:
				stale[f.t] = append(stale[f.t], f)
			}
		}
		m.mu.Unlock()
		for _, f := range expired {
			f.complete(fmt.Errorf("%w: no reply from %s/%s to %s by the call's deadline: %w",
				ErrActorUnavailable, f.t.ns, f.t.name, f.method, context.DeadlineExceeded))
		}
		for t, fs := range stale {
			m.checkAlive(t, fs)
		}
		for t, fs := range severed {
			m.severed(t, fs)
		}
	}
}

// severed handles calls possibly lost with the connection's previous
// broker server: each is redelivered while its redeliveries last
// (MaxTaskRetries: it may run twice), else fails with ErrActorUnavailable.
// A call still running on its instance fails (or runs again) too: no
// reply tells it apart from a lost one.
func (m *mux) severed(t *target, fs []*Future) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	rec, _, err := getRecord(ctx, m.c.kv, t.key)
	cancel()
	if err != nil && !errors.Is(err, ErrNotFound) {
		return // can't tell the retry budget; look again next tick
	}
	var lost []*Future
	m.mu.Lock()
	for _, f := range fs {
		if m.pending[f.token] == f {
			delete(m.pending, f.token)
			lost = append(lost, f)
		}
	}
	m.mu.Unlock()
	m.retryOrFail(rec, lost, func(f *Future) error {
		return fmt.Errorf("%w: call %s to %s/%s was in flight when the connection to the broker was lost (reconnected to another server): it may have been lost, or have run without its reply arriving",
			ErrActorUnavailable, f.method, t.ns, t.name)
	})
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
	var lost []*Future
	m.mu.Lock()
	for _, f := range fs {
		if m.pending[f.token] != f {
			continue
		}
		if rec != nil && (rec.State == StateReady || rec.State == StatePlacing) {
			if f.epoch < rec.Epoch && rec.StartedMS > 0 && rec.StartedMS < f.sent.UnixMilli() {
				f.epoch = rec.Epoch // sent after this instance started: it has the call
			}
			if f.epoch == rec.Epoch {
				continue
			}
			if f.epoch == 0 && (rec.StartedMS == 0 || rec.StartedMS <= f.sent.UnixMilli()) {
				f.epoch = rec.Epoch
				continue
			}
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
