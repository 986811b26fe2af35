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
// not kept waiting: about a second after the timeout the attempt fails with
// ErrTimeout, and the handler keeps its slot until it returns.
func TestATimeoutBoundsTheAttemptOfAHandlerThatIgnoresItsContext(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	reg := tasks.NewRegistry()
	tasks.Register(reg, "stubborn", func(context.Context, int) (int, error) {
		<-release // ignores ctx
		return 1, nil
	})
	ex, _ := e.executor("w1", reg, nil)
	t.Cleanup(func() { close(release) }) // runs before the executor stops
	p := e.producer()
	ctx := frayt.Context(t, 20*time.Second)
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	err := p.Submit(ctx, "stubborn", 0, tasks.Timeout(100*time.Millisecond)).Get(gctx, nil)
	if !errors.Is(err, tasks.ErrTimeout) {
		t.Fatalf("got %v after %s, want ErrTimeout", err, time.Since(start))
	}
	if ex.Running() != 1 {
		t.Fatalf("running %d: the abandoned handler should still hold its slot", ex.Running())
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
