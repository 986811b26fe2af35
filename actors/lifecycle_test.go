package actors

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/objects"
)

func TestNonDetachedActorStopsWhenItsCreatorJobEnds(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), "w1", nil, testRegistry(t))
	startSupervisor(t, srv.ClientURL())
	c := newClient(t, srv.ClientURL(), ClientOptions{CreatorJob: "/default/train"})
	ctx := frayt.Context(t, 30*time.Second)
	owned, err := c.CreateActor(ctx, ClassCounter, "owned", 0)
	if err != nil {
		t.Fatal(err)
	}
	detached, err := c.CreateActor(ctx, ClassCounter, "detached", 0, Detached())
	if err != nil {
		t.Fatal(err)
	}
	// The jobs system marks the job terminal in FRAY_JOB_STATE.
	_, js := frayt.Connect(t, srv.ClientURL())
	jkv, err := js.KeyValue(ctx, broker.BucketJobState)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := objects.Marshal(map[string]any{"v": 1, "id": "/default/train", "status": "SUCCEEDED"})
	if _, err := jkv.Put(ctx, "j.train", rec); err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 5*time.Second, "owned actor stopped", func() bool {
		r, err := owned.Record(ctx)
		return err == nil && r.State == StateStopped
	})
	// The supervisor writes the stopped record first, then tells the host;
	// calls fail once the host has stopped serving the instance.
	var callErr error
	frayt.Eventually(t, 5*time.Second, "calls to the stopped actor fail", func() bool {
		callErr = owned.Call(ctx, "Get", nil).Get(ctx, nil)
		return callErr != nil
	})
	if !errors.Is(callErr, ErrActorUnavailable) {
		t.Fatalf("call to stopped actor: %v", callErr)
	}
	if n := call[int64](t, ctx, detached, "Add", 1); n != 1 {
		t.Fatalf("detached actor: %d", n)
	}
}

type slow struct{}

func (s *slow) Work(ctx context.Context, ms int) (int, error) {
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
		return ms * 2, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func TestSubmittedOperationCanBePolledReattachedAndCanceled(t *testing.T) {
	srv := frayt.Server(t)
	reg := NewRegistry()
	Register(reg, "test.Slow", func(context.Context, struct{}) (*slow, error) { return &slow{}, nil })
	startWorker(t, srv.ClientURL(), "w1", nil, reg)
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	h, err := c.CreateActor(ctx, "test.Slow", "slow", nil, MaxConcurrency(4))
	if err != nil {
		t.Fatal(err)
	}
	op, err := h.Submit(ctx, "Work", 300)
	if err != nil {
		t.Fatal(err)
	}
	st, err := op.Status(ctx)
	if err != nil || st.Done() {
		t.Fatalf("status right after submit: %+v %v", st, err)
	}
	// Another process (a reconnected caller) re-attaches by id.
	other := newClient(t, srv.ClientURL())
	h2, err := other.GetActor(ctx, "slow")
	if err != nil {
		t.Fatal(err)
	}
	op2, err := h2.Operation(ctx, op.ID())
	if err != nil {
		t.Fatal(err)
	}
	var got int
	if err := op2.Wait(ctx, &got); err != nil || got != 600 {
		t.Fatalf("Wait: %d %v", got, err)
	}
	long, err := h.Submit(ctx, "Work", 60_000)
	if err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 5*time.Second, "operation running", func() bool {
		st, err := long.Status(ctx)
		return err == nil && st.State == OpRunning
	})
	if err := long.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if err := long.Wait(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel: %v", err)
	}
	if _, err := h.Submit(ctx, "Nope", nil); !errors.Is(err, ErrNoSuchMethod) {
		t.Fatalf("submit of missing method: %v", err)
	}
}

func TestCallMadeAfterShutdownReturnsFailsWithErrActorUnavailable(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), "w1", nil, testRegistry(t))
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, time.Minute)
	for i := range 20 {
		h, err := c.CreateActor(ctx, ClassCounter, fmt.Sprintf("short-lived-%d", i), 0)
		if err != nil {
			t.Fatal(err)
		}
		if n := call[int64](t, ctx, h, "Add", 1); n != 1 {
			t.Fatalf("round %d: Add = %d, want 1", i, n)
		}
		if err := h.Shutdown(ctx); err != nil {
			t.Fatalf("round %d: Shutdown: %v", i, err)
		}
		// Once Shutdown returned, the instance no longer serves: the call
		// never runs.
		var n int64
		if err := h.Call(ctx, "Add", 1).Get(ctx, &n); !errors.Is(err, ErrActorUnavailable) {
			t.Fatalf("round %d: call after Shutdown returned: n=%d err=%v, want ErrActorUnavailable", i, n, err)
		}
	}
}

func TestGroupShutdownStopsEveryMemberBeforeReturning(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), "w1", nil, testRegistry(t))
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, time.Minute)
	for round := range 5 {
		g, err := c.CreateActorGroup(ctx, ClassCounter, fmt.Sprintf("g%d", round), 4, 0)
		if err != nil {
			t.Fatal(err)
		}
		members, err := g.WaitReady(ctx, 4, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		for _, h := range members {
			if err := h.Call(ctx, "Add", 1).Get(ctx, nil); !errors.Is(err, ErrActorUnavailable) {
				t.Fatalf("round %d: call to %s after group Shutdown returned: %v", round, h, err)
			}
		}
	}
}

type slowCtor struct{}

func (*slowCtor) Ping(context.Context, struct{}) (string, error) { return "pong", nil }

// A Shutdown that comes while the constructor runs reaches the instance:
// the constructor's context is cancelled before Shutdown returns, and the
// instance never serves a call.
func TestShutdownDuringConstructionCancelsTheConstructor(t *testing.T) {
	srv := frayt.Server(t)
	reg := NewRegistry()
	var ctorCtx atomic.Pointer[context.Context]
	release := make(chan struct{})
	Register(reg, "test.SlowCtor", func(ctx context.Context, _ struct{}) (*slowCtor, error) {
		ctorCtx.Store(&ctx)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &slowCtor{}, nil
	})
	startWorker(t, srv.ClientURL(), "w1", nil, reg)
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	created := make(chan error, 1)
	go func() {
		_, err := c.CreateActor(ctx, "test.SlowCtor", "slowstart", nil)
		created <- err
	}()
	frayt.Eventually(t, 5*time.Second, "constructor running", func() bool { return ctorCtx.Load() != nil })
	h := c.handle(c.opts.Namespace, "slowstart", "test.SlowCtor", 1)
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if (*ctorCtx.Load()).Err() == nil {
		t.Fatal("Shutdown returned while the constructor's context was still live")
	}
	close(release)
	if err := <-created; err == nil {
		t.Fatal("the create succeeded though the actor was shut down while constructing")
	}
	if err := h.Call(ctx, "Ping", struct{}{}).Get(ctx, nil); !errors.Is(err, ErrActorUnavailable) && !errors.Is(err, ErrNotFound) {
		t.Fatalf("call after Shutdown: %v, want unavailable or not found", err)
	}
}

// A call to an actor that ended, once its tombstone is gone, fails soon
// with ErrNotFound: the missing standing record says it is not coming back
// (unlike an actor whose lease key a restarted broker dropped).
func TestCallToAnEndedActorWhoseTombstoneExpiredFailsSoon(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), "w1", nil, testRegistry(t))
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	h, err := c.CreateActor(ctx, ClassCounter, "ended", 0)
	if err != nil {
		t.Fatal(err)
	}
	call[int64](t, ctx, h, "Add", 1) // seen live
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.kv.Delete(ctx, recordKey("default", "ended")); err != nil { // the tombstone's expiry
		t.Fatal(err)
	}
	// Well within the four leases an actor that may come back is given.
	gctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	err = h.Call(gctx, "Get", nil).Get(gctx, nil)
	if !errors.Is(err, ErrActorUnavailable) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("call to an ended actor: %v; want ErrActorUnavailable wrapping ErrNotFound before the deadline", err)
	}
}

// A supervisor stopped at any point of its start-up (opening the buckets,
// starting its watch) stops cleanly: Run returns nil, as fray-broker
// expects of a service told to stop.
func TestASupervisorStoppedDuringStartUpReturnsNil(t *testing.T) {
	srv := frayt.Server(t)
	nc, js := frayt.Connect(t, srv.ClientURL())
	for i := range 60 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- NewSupervisor(nc, js, SupervisorOptions{}).Run(ctx) }()
		// Spread the stops over the start-up, which takes a few ms.
		time.Sleep(time.Duration(i%20) * 250 * time.Microsecond)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("stop %d: Run returned %v, want nil", i, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("stop %d: Run did not return", i)
		}
	}
}
