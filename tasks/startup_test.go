package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/tasks"
)

// A worker that has just started knows its pool's peers before it takes
// its first task: a task for a function it lacks but a peer serves is
// handed on, not failed as an unknown function because the worker had not
// read its pool's directory record yet.
func TestAJustStartedWorkerHandsOnATaskOnlyAPeerServes(t *testing.T) {
	e := newEnv(t)
	ctx := frayt.Context(t, 60*time.Second)
	_, js := frayt.Connect(t, e.url)
	// The peer that serves "work" is registered and listed in the pool
	// directory, but not pulling yet.
	reg := tasks.NewRegistry()
	tasks.Register(reg, "work", func(context.Context, int) (int, error) { return 1, nil })
	e.listPeer(js, "has", reg)
	p := e.producer()
	var futs []*tasks.Future
	for range 50 {
		f := p.Submit(ctx, "work", 0)
		if err := f.Queued(ctx); err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
	}
	// A worker lacking "work" starts first and meets the queued tasks; the
	// peer starts once it has.
	lacks, _ := e.executor("lacks", basicRegistry(), func(o *tasks.ExecutorOptions) { o.Concurrency = 8 })
	frayt.Eventually(t, 20*time.Second, "the worker lacking the function takes tasks", func() bool {
		return lacks.Running() > 0 || lacks.Served() > 0
	})
	e.executor("has", reg, nil)
	for i, f := range futs {
		if err := f.Get(ctx, nil); err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
	}
}

// A task cancelled while queued never starts, even on a worker that starts
// after the cancellation: the worker knows the cancellations before it
// takes its first task.
func TestATaskCancelledBeforeAWorkerStartsNeverRunsThere(t *testing.T) {
	e := newEnv(t)
	ctx := frayt.Context(t, 60*time.Second)
	reg := basicRegistry()
	var ran atomic.Int32
	tasks.Register(reg, "count", func(context.Context, int) (int, error) { ran.Add(1); return 1, nil })
	// Earlier cancellations, stored first, make the initial load of the
	// cancellations take a while, as on a busy cluster.
	_, js := frayt.Connect(t, e.url)
	cancels, err := js.KeyValue(ctx, broker.BucketCancels)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := cancels.Put(ctx, fmt.Sprint("earlier-", i), make([]byte, 100<<10)); err != nil {
			t.Fatal(err)
		}
	}
	p := e.producer()
	var futs []*tasks.Future
	for range 300 {
		f := p.Submit(ctx, "count", 0)
		if err := f.Queued(ctx); err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
	}
	// Last submitted, first cancelled: the cancellations of the tasks a
	// worker meets first are the last it learns of.
	for i := len(futs) - 1; i >= 0; i-- {
		if err := futs[i].Cancel(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e.executor("w1", reg, func(o *tasks.ExecutorOptions) { o.Concurrency = 8 })
	for _, f := range futs {
		if err := f.Get(ctx, nil); !errors.Is(err, tasks.ErrCancelled) {
			t.Fatalf("cancelled task: %v, want ErrCancelled", err)
		}
	}
	// Every cancelled message is consumed (acked without running): the
	// work-queue stream drops a message once it is acked. (The consumer's
	// counts are no witness: a consumer being created reports nothing
	// pending until it has taken up its role, so they can read zero before
	// the worker has seen a single task.)
	frayt.Eventually(t, 20*time.Second, "the cancelled tasks leave the queue", func() bool {
		s, err := js.Stream(ctx, broker.StreamTasks)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs == 0
	})
	// ... and none ran.
	if n := ran.Load(); n != 0 {
		t.Fatalf("%d cancelled tasks ran", n)
	}
}
