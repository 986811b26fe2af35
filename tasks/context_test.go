package tasks_test

import (
	"context"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/tasks"
)

type ctxKey struct{}

// A handler's context carries its task, what the executor's HandlerContext
// put in it, and its attempt's deadline; a context the handler derives
// from it ends with the attempt.
func TestAHandlersContextCarriesItsTaskValuesAndDeadline(t *testing.T) {
	e := newEnv(t)
	type seen struct {
		info        tasks.TaskInfo
		value       any
		hasDeadline bool
		childEnded  bool
	}
	got := make(chan seen, 1)
	reg := tasks.NewRegistry()
	tasks.Register(reg, "look", func(ctx context.Context, _ int) (int, error) {
		var s seen
		s.info, _ = tasks.CurrentTask(ctx)
		s.value = ctx.Value(ctxKey{})
		_, s.hasDeadline = ctx.Deadline()
		child, cancel := context.WithCancel(ctx)
		defer cancel()
		<-ctx.Done() // the attempt times out
		select {
		case <-child.Done():
			s.childEnded = true
		case <-time.After(5 * time.Second):
		}
		got <- s
		return 0, ctx.Err()
	})
	e.executor("w-ctx", reg, func(o *tasks.ExecutorOptions) {
		o.HandlerContext = func(ctx context.Context) context.Context {
			return context.WithValue(ctx, ctxKey{}, "from HandlerContext")
		}
	})
	p := e.producer()
	ctx := frayt.Context(t, 20*time.Second)
	f := p.Submit(ctx, "look", 1, tasks.Timeout(100*time.Millisecond))
	var s seen
	select {
	case s = <-got:
	case <-ctx.Done():
		t.Fatal("the handler did not run")
	}
	if s.info.ID != f.TaskID() || s.info.FutureID != f.ID() || s.info.Fn != "look" || s.info.Worker != "w-ctx" || s.info.Attempt != 1 {
		t.Fatalf("CurrentTask %+v, want task %s (%s) of look on w-ctx, attempt 1", s.info, f.TaskID(), f.ID())
	}
	if s.value != "from HandlerContext" || !s.hasDeadline || !s.childEnded {
		t.Fatalf("value %v, deadline %v, derived context ended %v; want HandlerContext's value, a deadline, ended", s.value, s.hasDeadline, s.childEnded)
	}
}
