package actors

import (
	"context"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/nats-io/nats.go"
)

// A broker down for longer than an actor's lease comes back without the
// lease key, until the host, alive all along, takes its lease back. A call
// lost with the broker must not be failed meanwhile as if the instance were
// gone: once the host is back it is redelivered (MaxTaskRetries 1).
func TestCallLostInBrokerOutageLongerThanTheLeaseWaitsForTheHostToTakeItsLeaseBack(t *testing.T) {
	b := newRestartableBroker(t)
	proxy := frayt.NewProxy(t, b.url()) // the host's way to the broker
	hc := newClient(t, proxy.URL, ClientOptions{HostLeaseTTL: testTTL})
	c := newClient(t, b.url())
	ctx := frayt.Context(t, 60*time.Second)
	x, err := hc.HostActor(ctx, "test.Counter", "retried", &Counter{}, MaxTaskRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	h := x.Handle().Bind(c)
	call[int64](t, ctx, h, "Add", 1) // the caller knows the epoch

	// The instance's call subscription gives way to a subscriber that
	// swallows the next call, as the broker going down with it would.
	sink, _ := frayt.Connect(t, b.url())
	swallowed := make(chan struct{}, 1)
	x.in.subMu.Lock()
	if err := x.in.sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	x.in.subMu.Unlock()
	if _, err := sink.QueueSubscribe(callSubject("default", "retried"), "fray-actor", func(*nats.Msg) { swallowed <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := sink.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := hc.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	f := h.Call(cctx, "Add", 1)
	select {
	case <-swallowed:
	case <-cctx.Done():
		t.Fatal("call never reached the sink")
	}
	sink.Close()
	x.in.subMu.Lock()
	x.in.sub, err = hc.nc.QueueSubscribe(callSubject("default", "retried"), "fray-actor", x.in.onCall)
	x.in.subMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := hc.nc.Flush(); err != nil {
		t.Fatal(err)
	}

	proxy.Cut() // the host stays away a while after the broker is back
	b.stop()
	time.Sleep(3 * testTTL) // the outage itself: the lease runs out meanwhile
	b.start()
	m := c.mux
	frayt.Eventually(t, 20*time.Second, "the caller back, finding the record missing", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.pending[f.token] != f || !f.absentSince.IsZero()
	})
	select {
	case <-f.Done():
		t.Fatalf("call failed while its host was taking its lease back: %v", f.Get(ctx, nil))
	default:
	}

	proxy.Restore()
	var v int64
	if err := f.Get(cctx, &v); err != nil || v != 2 {
		t.Fatalf("lost call with MaxTaskRetries 1: %d, %v; want it redelivered once the host is back (2)", v, err)
	}
}
