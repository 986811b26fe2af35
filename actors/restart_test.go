package actors

import (
	"context"
	"errors"
	"fmt"
	"net"
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
	// nats-server picks the port the first time (one reserved here and
	// released is free for anyone to take first); restarts ask for it again.
	b := &restartableBroker{t: t, dir: t.TempDir(), port: -1}
	b.start()
	b.port = b.srv.NATS().Addr().(*net.TCPAddr).Port
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

// runFastSweepingSupervisor runs a supervisor whose sweep looks again
// every 100 ms, until the returned stop is called (or the test ends).
func runFastSweepingSupervisor(t *testing.T, url string) (stop func()) {
	t.Helper()
	return runSupervisor(t, url, SupervisorOptions{PlacementTimeout: 5 * time.Second, sweepTick: 100 * time.Millisecond})
}

// An actor's host dies (SIGKILL: no cleanup) while the broker is down for
// longer than the lease; the broker comes back having dropped the expired
// lease key, with a new supervisor that never saw it. The actor must still
// get its restart policy: restarted on another host with its restart
// counted while restarts remain, declared dead (not silently gone) when
// none remain.
func TestActorWhoseHostDiesDuringBrokerOutageIsRestartedElsewhereOrDeclaredDead(t *testing.T) {
	b := newRestartableBroker(t)
	reg := testRegistry(t)
	wa := startWorker(t, b.url(), "wa", nil, reg)
	stopSup := runFastSweepingSupervisor(t, b.url())
	c := newClient(t, b.url())
	ctx := frayt.Context(t, 90*time.Second)
	restartable, err := c.CreateActor(ctx, ClassCounter, "restartable", 0, MaxRestarts(2), Detached())
	if err != nil {
		t.Fatal(err)
	}
	fragile, err := c.CreateActor(ctx, ClassCounter, "fragile", 0, Detached()) // MaxRestarts 0
	if err != nil {
		t.Fatal(err)
	}
	startWorker(t, b.url(), "wb", nil, reg)
	call[int64](t, ctx, restartable, "Add", 5)
	first := call[string](t, ctx, restartable, "ID", nil)

	stopSup() // fray-broker stops, its supervisor with it
	b.stop()
	wa.nc.Close()           // SIGKILL of the host: no final record, no renewals
	time.Sleep(3 * testTTL) // the outage itself: the leases run out meanwhile
	b.start()
	awaitLeaseKeysGone(t, b.url(), "restartable", "fragile")
	runFastSweepingSupervisor(t, b.url())

	frayt.Eventually(t, 20*time.Second, "restartable serves again from wb", func() bool {
		rec, err := restartable.Record(ctx)
		return err == nil && rec.State == StateReady && rec.Host == "wb"
	})
	rec, err := restartable.Record(ctx)
	if err != nil || rec.Epoch != 2 || rec.Restarts != 1 {
		t.Fatalf("restarted record %+v, %v; want epoch 2 after exactly one restart", rec, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if id := call[string](t, cctx, restartable, "ID", nil); id == first {
		t.Fatal("same instance after the restart")
	}
	if v := call[int64](t, cctx, restartable, "Get", nil); v != 0 {
		t.Fatalf("restarted counter at %d; want a new instance from its constructor argument 0", v)
	}

	frayt.Eventually(t, 20*time.Second, "fragile declared dead", func() bool {
		rec, err := fragile.Record(ctx)
		return err == nil && rec.State == StateDead
	})
	err = fragile.Call(cctx, "Get", nil).Get(cctx, nil)
	if !errors.Is(err, ErrActorUnavailable) || errors.Is(err, ErrNotFound) {
		t.Fatalf("call to the dead actor: %v; want ErrActorUnavailable saying it is dead", err)
	}
}

// A shut-down actor is over: once its tombstone has expired too (here
// while the broker is down), the sweep that restarts lost actors must not
// bring it back.
func TestShutDownActorIsNotResurrectedAfterBrokerOutage(t *testing.T) {
	b := newRestartableBroker(t)
	reg := testRegistry(t)
	wa := startWorker(t, b.url(), "wa", nil, reg)
	stopSup := runFastSweepingSupervisor(t, b.url())
	c := newClient(t, b.url())
	ctx := frayt.Context(t, 90*time.Second)
	ended, err := c.CreateActor(ctx, ClassCounter, "ended", 0, MaxRestarts(-1), Detached())
	if err != nil {
		t.Fatal(err)
	}
	lost, err := c.CreateActor(ctx, ClassCounter, "lost", 0, MaxRestarts(-1), Detached())
	if err != nil {
		t.Fatal(err)
	}
	startWorker(t, b.url(), "wb", nil, reg)
	if err := ended.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	stopSup()
	// The stopped tombstone (60 s) expires: purge it as its expiry would.
	_, js := frayt.Connect(t, b.url())
	st, err := js.Stream(ctx, "KV_"+broker.BucketActors)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject("$KV."+broker.BucketActors+".a.default.ended")); err != nil {
		t.Fatal(err)
	}
	b.stop()
	wa.nc.Close()
	time.Sleep(3 * testTTL)
	b.start()
	awaitLeaseKeysGone(t, b.url(), "lost")
	runFastSweepingSupervisor(t, b.url())

	// The sweep has run once the lost actor serves again.
	frayt.Eventually(t, 20*time.Second, "lost actor restarted on wb", func() bool {
		rec, err := lost.Record(ctx)
		return err == nil && rec.State == StateReady && rec.Host == "wb"
	})
	if rec, err := ended.Record(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("shut-down actor after the outage: %+v, %v; want no record", rec, err)
	}
	if _, err := c.GetActor(ctx, "ended"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetActor of the shut-down actor: %v; want ErrNotFound", err)
	}
}

// awaitLeaseKeysGone waits until the restarted broker has dropped the
// expired lease keys of the actors names (in namespace default), as it
// does before a supervisor starting with it watches: a supervisor that
// starts now never sees them expire.
func awaitLeaseKeysGone(t *testing.T, url string, names ...string) {
	t.Helper()
	_, js := frayt.Connect(t, url)
	ctx := frayt.Context(t, 30*time.Second)
	kv, err := js.KeyValue(ctx, broker.BucketActors)
	if err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 10*time.Second, fmt.Sprintf("the broker dropped the expired lease keys of %v", names), func() bool {
		for _, n := range names {
			if _, _, err := getRecord(ctx, kv, recordKey("default", n)); !errors.Is(err, ErrNotFound) {
				return false
			}
		}
		return true
	})
}

// A call whose request (or reply) goes down with the broker is lost: core
// NATS delivers at most once, and the instance it went to still holds its
// lease, so nothing else ends it. Once the connection is back on the
// restarted broker the call is redelivered if its actor allows retries,
// else it fails with ErrActorUnavailable; either way long before its
// deadline, never a hang.
func TestCallLostWithARestartingBrokerIsRetriedOrFailsLongBeforeItsDeadline(t *testing.T) {
	b := newRestartableBroker(t)
	hc := newClient(t, b.url())
	c := newClient(t, b.url())
	ctx := frayt.Context(t, 60*time.Second)
	retried, err := hc.HostActor(ctx, "test.Counter", "retried", &Counter{}, MaxTaskRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := hc.HostActor(ctx, "test.Counter", "plain", &Counter{})
	if err != nil {
		t.Fatal(err)
	}
	hr, hp := retried.Handle().Bind(c), plain.Handle().Bind(c)
	call[int64](t, ctx, hr, "Add", 1) // the caller knows the epoch
	call[int64](t, ctx, hp, "Add", 1)

	// The instances' call subscriptions give way to a subscriber that
	// swallows what it gets, as the broker going down with the requests
	// in it would.
	sink, _ := frayt.Connect(t, b.url())
	swallowed := make(chan string, 2)
	for _, x := range []*Hosted{retried, plain} {
		x.in.subMu.Lock()
		if err := x.in.sub.Unsubscribe(); err != nil {
			t.Fatal(err)
		}
		x.in.subMu.Unlock()
		if _, err := sink.QueueSubscribe(callSubject("default", x.h.Name()), "fray-actor", func(m *nats.Msg) { swallowed <- m.Subject }); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := hc.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	fr, fp := hr.Call(cctx, "Add", 1), hp.Call(cctx, "Add", 1)
	for range 2 {
		select {
		case <-swallowed:
		case <-cctx.Done():
			t.Fatal("calls never reached the sink")
		}
	}
	sink.Close()
	for _, x := range []*Hosted{retried, plain} {
		x.in.subMu.Lock()
		x.in.sub, err = hc.nc.QueueSubscribe(callSubject("default", x.h.Name()), "fray-actor", x.in.onCall)
		x.in.subMu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	}
	b.stop()
	b.start()

	var v int64
	if err := fr.Get(cctx, &v); err != nil || v != 2 {
		t.Fatalf("lost call with MaxTaskRetries 1: %d, %v; want it redelivered (2)", v, err)
	}
	if err := fp.Get(cctx, nil); !errors.Is(err, ErrActorUnavailable) {
		t.Fatalf("lost call without retries: %v; want ErrActorUnavailable", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("lost calls ended after %s; want well before their 30 s deadline", d)
	}
}
