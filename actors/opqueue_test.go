package actors

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// opCounter counts the Work operations it ran.
type opCounter struct{ n atomic.Int32 }

func (o *opCounter) Work(ctx context.Context, ms int) (int, error) {
	o.n.Add(1)
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
		return ms, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (o *opCounter) Count(context.Context, struct{}) (int, error) { return int(o.n.Load()), nil }

func startCounterActor(t *testing.T) (*Client, *Handle, context.Context) {
	t.Helper()
	srv := frayt.Server(t)
	reg := NewRegistry()
	Register(reg, "test.OpCounter", func(context.Context, struct{}) (*opCounter, error) { return &opCounter{}, nil })
	startWorker(t, srv.ClientURL(), "w1", nil, reg)
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 60*time.Second)
	h, err := c.CreateActor(ctx, "test.OpCounter", "ops", nil) // MaxConcurrency 1
	if err != nil {
		t.Fatal(err)
	}
	return c, h, ctx
}

// startLongOp submits a Work operation of a minute and waits until it runs.
func startLongOp(t *testing.T, ctx context.Context, h *Handle) *Operation {
	t.Helper()
	op, err := h.Submit(ctx, "Work", 60_000)
	if err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 5*time.Second, "first operation running", func() bool {
		st, err := op.Status(ctx)
		return err == nil && st.State == OpRunning
	})
	return op
}

// Submit returns once the operation is accepted, though the serial actor
// is busy with another: the caller holds the queued operation and can
// cancel it, and then it never runs.
func TestSubmitToABusySerialActorReturnsAQueuedOperationThatCanBeCanceled(t *testing.T) {
	_, h, ctx := startCounterActor(t)
	long := startLongOp(t, ctx, h)
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	queued, err := h.Submit(sctx, "Work", 1)
	if err != nil {
		t.Fatalf("Submit while the actor is busy: %v", err)
	}
	if st, err := queued.Status(ctx); err != nil || st.State != OpPending || st.Epoch == 0 {
		t.Fatalf("queued operation's record %+v %v, want pending with the instance's epoch", st, err)
	}
	if err := queued.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if err := long.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if err := long.Wait(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("first operation: %v", err)
	}
	if err := queued.Wait(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("queued operation: %v", err)
	}
	if n := call[int](t, ctx, h, "Count", nil); n != 1 {
		t.Fatalf("Work ran %d times, want 1 (the canceled queued operation must not run)", n)
	}
}

// An operation whose submitter gave up (the call reached the host, the
// acceptance did not reach the submitter, which removed the record) never
// runs.
func TestOperationWithdrawnByItsSubmitterNeverRuns(t *testing.T) {
	c, h, ctx := startCounterActor(t)
	long := startLongOp(t, ctx, h)
	// What Submit does, up to the acceptance, which it then disowns as it
	// does when that does not reach it in time.
	id := nuid.Next()
	key := opKey(h.ns, h.name, id)
	now := time.Now().UnixMilli()
	data, err := objects.Marshal(&OpRecord{V: 1, ID: id, Namespace: h.ns, Actor: h.name, Method: "Work", State: OpPending, CreatedMS: now, UpdatedMS: now})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := c.kv.Create(ctx, key, data, jetstream.KeyTTL(OpTTL))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.mux.call(ctx, c.mux.target(h.ns, h.name), "Work", 1, id).Get(ctx, nil); err != nil {
		t.Fatalf("host did not accept the operation: %v", err)
	}
	if err := removeKey(ctx, c.js, key, rev, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := long.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	// A serial actor runs a call after the operations queued before it.
	if n := call[int](t, ctx, h, "Count", nil); n != 1 {
		t.Fatalf("Work ran %d times, want 1 (the withdrawn operation must not run)", n)
	}
	if _, err := c.kv.Get(ctx, key); !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted) {
		t.Fatalf("withdrawn operation's record: %v, want none", err)
	}
}
