package tasks_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/tasks"
)

// A handler that ignores its context cannot be stopped, but its caller is
// not kept waiting: a few seconds after the timeout the attempt fails with
// ErrTimeout, and the handler keeps its slot until it returns, or until
// the worker stops, which it does not hold up.
func TestATimeoutBoundsTheAttemptOfAHandlerThatIgnoresItsContext(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	reg := tasks.NewRegistry()
	tasks.Register(reg, "stubborn", func(context.Context, int) (int, error) {
		<-release // ignores ctx
		return 1, nil
	})
	ex, stop := e.executor("w1", reg, func(o *tasks.ExecutorOptions) {
		o.DrainTimeout = time.Hour
		tasks.SetTimeoutGrace(o, 500*time.Millisecond) // not the 6 s default
	})
	t.Cleanup(func() { close(release) }) // after the executor stopped
	p := e.producer()
	ctx := frayt.Context(t, 30*time.Second)
	gctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	start := time.Now()
	err := p.Submit(ctx, "stubborn", 0, tasks.Timeout(100*time.Millisecond)).Get(gctx, nil)
	if !errors.Is(err, tasks.ErrTimeout) {
		t.Fatalf("got %v after %s, want ErrTimeout", err, time.Since(start))
	}
	if ex.Running() != 1 {
		t.Fatalf("running %d: the abandoned handler should still hold its slot", ex.Running())
	}
	// The drain has nothing to wait for (the attempt is settled): stopping
	// returns long before the hour-long drain timeout, or the test's.
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		t.Fatal("the executor did not stop: the abandoned handler held it")
	}
}

// A value returned after the attempt's timeout passed does not count: the
// attempt ran past its timeout.
func TestAValueReturnedAfterTheTimeoutIsATimeout(t *testing.T) {
	e := newEnv(t)
	reg := tasks.NewRegistry()
	tasks.Register(reg, "late", func(context.Context, int) (int, error) {
		time.Sleep(300 * time.Millisecond) // ignores ctx, returns within the grace period
		return 1, nil
	})
	e.executor("w1", reg, nil)
	p := e.producer()
	ctx := frayt.Context(t, 20*time.Second)
	err := p.Submit(ctx, "late", 0, tasks.Timeout(100*time.Millisecond)).Get(ctx, nil)
	if !errors.Is(err, tasks.ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
}
