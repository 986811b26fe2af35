package actors

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// restartableBroker is a provisioned broker on a fixed port and store that
// a test can stop and start again, as an operator restarts fray-broker.
type restartableBroker struct {
	t    *testing.T
	dir  string
	port int
	srv  *broker.Server
}

func newRestartableBroker(t *testing.T) *restartableBroker {
	t.Helper()
	b := &restartableBroker{t: t, dir: t.TempDir(), port: frayt.FreePort(t)}
	b.start()
	nc, js := frayt.Connect(t, b.url())
	if err := broker.Provision(frayt.Context(t, 30*time.Second), js, nc.ConnectedServerVersion(), broker.ProvisionOptions{}); err != nil {
		t.Fatalf("provision: %v", err)
	}
	nc.Close()
	t.Cleanup(func() {
		if b.srv != nil {
			b.srv.Shutdown()
		}
	})
	return b
}

func (b *restartableBroker) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", b.port) }

func (b *restartableBroker) start() {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := broker.Start(ctx, broker.Options{StoreDir: b.dir, Port: b.port})
	if err != nil {
		b.t.Fatalf("start broker: %v", err)
	}
	b.srv = srv
}

func (b *restartableBroker) stop() {
	b.srv.Shutdown()
	b.srv = nil
}

// A broker outage longer than the actor lease expires every lease while no
// one can renew it. The hosts are alive and still hold their instances:
// once the broker is back, each actor must keep serving from its host with
// its state, not vanish (nor be restarted needlessly).
func TestActorKeepsServingWithItsStateAfterBrokerOutageLongerThanItsLease(t *testing.T) {
	b := newRestartableBroker(t)
	reg := testRegistry(t)
	startWorker(t, b.url(), "wa", nil, reg)
	startSupervisor(t, b.url())
	c := newClient(t, b.url())
	ctx := frayt.Context(t, 60*time.Second)
	h, err := c.CreateActor(ctx, ClassCounter, "outlives", 0, MaxRestarts(-1), Detached())
	if err != nil {
		t.Fatal(err)
	}
	call[int64](t, ctx, h, "Add", 5)
	id := call[string](t, ctx, h, "ID", nil)

	b.stop()
	time.Sleep(3 * testTTL) // the outage itself: every lease runs out meanwhile
	b.start()

	var got int64
	var gotID string
	frayt.Eventually(t, 10*time.Second, "the actor serves again after the outage", func() bool {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := h.Call(cctx, "Get", nil).Get(cctx, &got); err != nil {
			return false
		}
		return h.Call(cctx, "ID", nil).Get(cctx, &gotID) == nil
	})
	if got != 5 || gotID != id {
		t.Fatalf("after the outage: value %d from instance %s; want 5 from the same instance %s", got, gotID, id)
	}
	// And it stays: the lease is held again (renewals go through).
	time.Sleep(2 * testTTL)
	rec, err := h.Record(ctx)
	if err != nil || rec.State != StateReady || rec.Epoch != 1 || rec.Host != "wa" {
		t.Fatalf("record after the outage: %+v, %v; want ready, epoch 1 on wa", rec, err)
	}
}

// A lease key that vanishes with no one writing it (what a broker that
// restarts after the TTL does to every lease: it drops the expired keys
// before any supervisor watches) is taken back by the live host.
func TestLeaseKeyGoneWithoutAnyoneWritingIsTakenBackByItsHost(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), "wa", nil, testRegistry(t))
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	h, err := c.CreateActor(ctx, ClassCounter, "vanishes", 0)
	if err != nil {
		t.Fatal(err)
	}
	call[int64](t, ctx, h, "Add", 3)
	_, js := frayt.Connect(t, srv.ClientURL())
	st, err := js.Stream(ctx, "KV_"+broker.BucketActors)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject("$KV."+broker.BucketActors+".a.default.vanishes")); err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 2*testTTL, "the host writes its record back", func() bool {
		rec, err := h.Record(ctx)
		return err == nil && rec.State == StateReady && rec.Epoch == 1 && rec.Host == "wa"
	})
	if v := call[int64](t, ctx, h, "Get", nil); v != 3 {
		t.Fatalf("value %d after the lease came back; want 3", v)
	}
}

// Someone else's write, even a bare delete, revokes the lease: the host
// does not take the key back.
func TestLeaseKeyDeletedBySomeoneElseStopsTheInstance(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), "wa", nil, testRegistry(t))
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	h, err := c.CreateActor(ctx, ClassCounter, "deleted", 0)
	if err != nil {
		t.Fatal(err)
	}
	call[int64](t, ctx, h, "Add", 3)
	if err := c.kv.Delete(ctx, "a.default.deleted"); err != nil {
		t.Fatal(err)
	}
	nc, _ := frayt.Connect(t, srv.ClientURL())
	frayt.Eventually(t, 2*testTTL, "the instance stops serving", func() bool {
		_, err := nc.Request(callSubject("default", "deleted"), nil, time.Second)
		return errors.Is(err, nats.ErrNoResponders)
	})
	if _, err := h.Record(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("record after the delete: %v; want ErrNotFound", err)
	}
}

// A call refused with no responders by the instance that still holds the
// lease (its host subscribing again after reconnecting to a restarted
// broker) is sent again once the instance is back, not held until its
// deadline waiting for a newer epoch that never comes.
func TestCallRefusedWhileInstanceResubscribesIsSentAgainToIt(t *testing.T) {
	srv := frayt.Server(t)
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	x, err := c.HostActor(ctx, "test.Counter", "resubscribes", &Counter{})
	if err != nil {
		t.Fatal(err)
	}
	h := x.Handle()
	call[int64](t, ctx, h, "Add", 1) // the client has seen epoch 1

	// The host's connection loses its call subscription, as across a
	// broker restart, and gets it back a moment later.
	x.in.subMu.Lock()
	if err := x.in.sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	x.in.subMu.Unlock()
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	f := h.Call(cctx, "Add", 1)
	time.Sleep(300 * time.Millisecond) // refused meanwhile: no responders
	x.in.subMu.Lock()
	x.in.sub, err = c.nc.QueueSubscribe(callSubject("default", "resubscribes"), "fray-actor", x.in.onCall)
	x.in.subMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	var v int64
	if err := f.Get(cctx, &v); err != nil || v != 2 {
		t.Fatalf("call after the instance subscribed again: %d, %v after %s; want 2", v, err, time.Since(start))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("call took %s; want it sent again as soon as the instance is back", d)
	}
}
