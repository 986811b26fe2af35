package tasks_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/tasks"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Submitting with a context that is already done queues nothing: the
// future fails with the context's error.
func TestSubmitWithADoneContextQueuesNothing(t *testing.T) {
	e := newEnv(t)
	p := e.producer()
	ctx := frayt.Context(t, 10*time.Second)
	done, cancel := context.WithCancel(ctx)
	cancel()
	f := p.Submit(done, "add", [2]int{1, 2})
	gctx, gcancel := context.WithTimeout(ctx, 2*time.Second) // no worker: only a submission error resolves it
	defer gcancel()
	if err := f.Get(gctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	_, js := frayt.Connect(t, e.url)
	s, err := js.Stream(ctx, broker.StreamTasks)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Fatalf("%d tasks queued, want none", info.State.Msgs)
	}
}

// A task cancelled through a future obtained by id (which knows no
// function name) reads cleanly, in every process.
func TestACancellationByIDReadsCleanly(t *testing.T) {
	e := newEnv(t)
	p := e.producer()
	ctx := frayt.Context(t, 10*time.Second)
	queued := p.Submit(ctx, "add", [2]int{1, 2}, tasks.Pool("nobody"))
	if err := queued.Queued(ctx); err != nil {
		t.Fatal(err)
	}
	byID, err := e.producer().Future(queued.ID())
	if err != nil {
		t.Fatal(err)
	}
	if err := byID.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	err = queued.Get(ctx, nil)
	want := "task " + queued.TaskID() + " failed: cancelled by the caller"
	if !errors.Is(err, tasks.ErrCancelled) || err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
}

// A submission whose publish finds no stream (no responders) is sent again
// after each retry delay while the stream may come back, then fails naming
// the cause rather than waiting for ever.
func TestASubmissionThatFindsNoStreamFailsNamingTheCauseAfterItsRetries(t *testing.T) {
	e := newEnv(t)
	ctx := frayt.Context(t, 20*time.Second)
	nc, js := frayt.Connect(t, e.url)
	o := tasks.ProducerOptions{}
	tasks.SetSubmitRetryDelays(&o, 20*time.Millisecond, 40*time.Millisecond)
	p, err := tasks.NewProducer(ctx, nc, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	if err := js.DeleteStream(ctx, broker.StreamTasks); err != nil {
		t.Fatal(err)
	}
	f := p.Submit(ctx, "add", [2]int{1, 2})
	if err := f.Queued(ctx); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("Queued: %v, want the publish's no-responders error", err)
	}
}

// A submitted task is a version-2 record named by its message's one
// header, Nats-Msg-Id: the future id. The record carries what to run, and
// no max_deliveries when it is the default.
func TestASubmittedTaskIsNamedByItsMessageID(t *testing.T) {
	e := newEnv(t)
	p := e.producer()
	ctx := frayt.Context(t, 10*time.Second)
	nc, _ := frayt.Connect(t, e.url)
	got := make(chan *nats.Msg, 2)
	sub, err := nc.ChanSubscribe(taskwire.TaskSubject("spy"), got)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	plain := p.Submit(ctx, "add", [2]int{1, 2}, tasks.Pool("spy"))
	bounded := p.Submit(ctx, "add", [2]int{3, 4}, tasks.Pool("spy"), tasks.MaxDeliveries(2))
	for _, c := range []struct {
		f             *tasks.Future
		maxDeliveries int
	}{{plain, 0}, {bounded, 2}} {
		var m *nats.Msg
		select {
		case m = <-got:
		case <-ctx.Done():
			t.Fatal("no task message published")
		}
		if len(m.Header) != 1 || m.Header.Get(jetstream.MsgIDHeader) != c.f.ID() {
			t.Fatalf("task %s published with headers %v, want only Nats-Msg-Id: %s", c.f.ID(), m.Header, c.f.ID())
		}
		var rec map[string]any
		if err := objects.Unmarshal(m.Data, &rec); err != nil {
			t.Fatal(err)
		}
		if rec["v"] != uint64(taskwire.TaskVersion) || rec["fn"] != "add" || rec["id"] != nil || rec["owner"] != nil {
			t.Fatalf("task %s record %v: want version %d, fn add, no id or owner", c.f.ID(), rec, taskwire.TaskVersion)
		}
		if md, _ := rec["max_deliveries"].(uint64); int(md) != c.maxDeliveries {
			t.Fatalf("task %s record %v: max_deliveries %d, want %d (0: left out)", c.f.ID(), rec, md, c.maxDeliveries)
		}
	}
}
