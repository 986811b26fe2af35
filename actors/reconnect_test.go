package actors

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
)

// gate is an actor whose first Hold call waits until the test opens the
// gate; later calls return at once. Each call returns how many Hold calls
// the instance has started so far.
type gate struct {
	started chan struct{}
	open    chan struct{}
	runs    atomic.Int64
}

func newGate() *gate { return &gate{started: make(chan struct{}, 8), open: make(chan struct{})} }

func (g *gate) Hold(ctx context.Context) (int64, error) {
	n := g.runs.Add(1)
	g.started <- struct{}{}
	if n == 1 {
		select {
		case <-g.open:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return n, nil
}

// reconnectSetup hosts gates from one connection and calls them through a
// proxy whose connections the test can cut, so the caller alone loses its
// connection and gets it back to the same, still running server.
func reconnectSetup(t *testing.T) (ctx context.Context, host *Client, caller *Client, proxy *frayt.Proxy) {
	srv := frayt.Server(t)
	proxy = frayt.NewProxy(t, srv.ClientURL())
	return frayt.Context(t, 60*time.Second), newClient(t, srv.ClientURL()), newClient(t, proxy.URL), proxy
}

func awaitStarted(t *testing.T, ctx context.Context, g *gate) {
	t.Helper()
	select {
	case <-g.started:
	case <-ctx.Done():
		t.Fatal("call never started")
	}
}

// A reply published while its caller is disconnected is dropped: core NATS
// has nobody to give it to. Once the caller is back on the same server the
// call is redelivered if its actor allows retries, else it fails with
// ErrActorUnavailable; either way long before its deadline.
func TestCallWhoseReplyIsLostWhileTheCallerReconnectsIsRetriedOrFailsBeforeItsDeadline(t *testing.T) {
	ctx, host, caller, proxy := reconnectSetup(t)
	gr, gp := newGate(), newGate()
	hr, err := host.HostActor(ctx, "test.Gate", "retried", gr, MaxTaskRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	hp, err := host.HostActor(ctx, "test.Gate", "plain", gp)
	if err != nil {
		t.Fatal(err)
	}
	// The calls' own deadline is far off; Get gives up sooner, so a call
	// left waiting for its deadline shows as DeadlineExceeded.
	callCtx, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	fr := hr.Handle().Bind(caller).Call(callCtx, "Hold", nil)
	fp := hp.Handle().Bind(caller).Call(callCtx, "Hold", nil)
	awaitStarted(t, ctx, gr)
	awaitStarted(t, ctx, gp)

	proxy.Cut()
	close(gr.open)
	close(gp.open)
	// Both replies are published and dropped before the caller is back.
	if err := host.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	proxy.Restore()

	getCtx, cancelGet := context.WithTimeout(ctx, 20*time.Second)
	defer cancelGet()
	var n int64
	if err := fr.Get(getCtx, &n); err != nil || n != 2 {
		t.Fatalf("lost reply with MaxTaskRetries 1: %d, %v; want the call run again (2)", n, err)
	}
	err = fp.Get(getCtx, nil)
	if !errors.Is(err, ErrActorUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lost reply without retries: %v; want ErrActorUnavailable before any deadline", err)
	}
	if runs := gp.runs.Load(); runs != 1 {
		t.Fatalf("call without retries ran %d times", runs)
	}
}

// A call still running when its caller reconnects is neither failed nor run
// again: its reply, published after the caller is back, arrives.
func TestCallRunningWhileTheCallerReconnectsReturnsItsResultAndRunsOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []CreateOption
	}{
		{"serial", []CreateOption{MaxTaskRetries(3)}},
		{"concurrent", []CreateOption{MaxTaskRetries(3), MaxConcurrency(4)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, host, caller, proxy := reconnectSetup(t)
			g := newGate()
			h, err := host.HostActor(ctx, "test.Gate", "g", g, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			f := h.Handle().Bind(caller).Call(ctx, "Hold", nil)
			awaitStarted(t, ctx, g)
			reconnects, gen := caller.nc.Stats().Reconnects, caller.mux.gen.Load()
			proxy.Cut()
			proxy.Restore()
			frayt.Eventually(t, 10*time.Second, "caller reconnected", func() bool {
				return caller.nc.Stats().Reconnects > reconnects && caller.nc.IsConnected()
			})
			// The server has the caller's subscriptions again (a reply
			// published before that would be lost, and rightly retried).
			if err := caller.nc.Flush(); err != nil {
				t.Fatal(err)
			}
			// The barrier went out: a serial instance holds it behind the
			// running call; a concurrent one says the call is running.
			frayt.Eventually(t, 10*time.Second, "barrier in flight or answered 'running'", func() bool {
				m := caller.mux
				m.mu.Lock()
				defer m.mu.Unlock()
				now := m.gen.Load()
				if now == gen {
					return false
				}
				if tc.name == "serial" {
					b := h.Handle().Bind(caller)
					t := m.target(b.ns, b.name)
					return t.barrier != nil && t.barrier.gen == now
				}
				return f.gen == now && m.pending[f.token] == f
			})
			close(g.open)
			var n int64
			if err := f.Get(ctx, &n); err != nil || n != 1 {
				t.Fatalf("call across the reconnect: %d, %v; want its one run's result (1)", n, err)
			}
			if runs := g.runs.Load(); runs != 1 {
				t.Fatalf("ran %d times", runs)
			}
		})
	}
}

// slowGate is a gate whose later Hold calls take a while, as real work
// does: long enough for a barrier's verdict to act before their reply.
type slowGate struct{ *gate }

func (g *slowGate) Hold(ctx context.Context) (int64, error) {
	n := g.runs.Add(1)
	g.started <- struct{}{}
	if n == 1 {
		<-g.open
	} else {
		time.Sleep(300 * time.Millisecond)
	}
	return n, nil
}

// A call sent again (after a refusal, or to a new epoch) while a barrier
// naming it is out travels behind the barrier, whose answer says nothing
// of it: it must not be judged lost by it.
func TestACallSentAgainWhileABarrierIsOutIsNotJudgedByIt(t *testing.T) {
	ctx, host, caller, proxy := reconnectSetup(t)
	g := &slowGate{gate: newGate()}
	hh, err := host.HostActor(ctx, "test.SlowGate", "g", g, MaxTaskRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	h := hh.Handle().Bind(caller)
	m := caller.mux
	tg := m.target(h.ns, h.name)
	f1 := h.Call(ctx, "Hold", nil) // holds the serial instance, so the barrier waits
	awaitStarted(t, ctx, g.gate)
	f2 := h.Call(ctx, "Hold", nil) // queued behind f1
	gen := m.gen.Load()
	proxy.Cut()
	proxy.Restore()
	frayt.Eventually(t, 10*time.Second, "a barrier naming f2 is out", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return tg.barrier != nil && tg.barrier.gen > gen
	})
	// What redeliver does after a refusal: take f2 and send it again, with
	// its token. (Its first request still waits behind f1 too.)
	if !m.take(f2) {
		t.Fatal("f2 not pending")
	}
	f2.retries++
	m.send(f2)
	close(g.open)
	if err := f1.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := f2.Get(ctx, &n); err != nil {
		t.Fatalf("f2, sent again after the barrier: %v; want its reply", err)
	}
}
