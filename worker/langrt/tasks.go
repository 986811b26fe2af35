package langrt

import (
	"context"
	"errors"

	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/tasks"
)

// RegisterTasks registers every function the runtime serves in reg. Each
// runs in a free task process; its result is the CBOR the runtime encoded,
// passed on unchanged.
func (rt *Runtime) RegisterTasks(reg *tasks.Registry) error {
	for _, fn := range rt.hello.Functions {
		if err := reg.Handle(fn, rt.taskHandler(fn)); err != nil {
			return err
		}
	}
	return nil
}

// taskHandler runs fn in a free task process. When the attempt ends before
// the process answers (a timeout, a cancellation, a drain past its grace)
// the process is killed, since the code cannot be interrupted, and
// replaced; a process that dies mid-task fails the attempt with kind
// runtime_crashed.
func (rt *Runtime) taskHandler(fn string) tasks.Handler {
	return func(ctx context.Context, arg []byte) (any, error) {
		p, err := rt.pool.acquire(ctx)
		if err != nil {
			return nil, err
		}
		f := &Frame{T: FrameRun, Fn: fn, Arg: arg}
		label := ""
		if ti, ok := tasks.CurrentTask(ctx); ok {
			f.Task = &TaskInfo{ID: ti.ID, Attempt: ti.Attempt}
			label = ti.ID
		}
		r, err := p.request(ctx, f, label)
		switch {
		case errors.Is(err, ErrCrashed):
			return nil, &tasks.RemoteError{Kind: tasks.KindRuntimeCrashed, Lang: rt.hello.Lang, Type: "fray.RuntimeCrashed",
				Message: "the " + rt.hello.Lang + " runtime running the task died: " + err.Error()}
		case err != nil:
			p.kill() // the code cannot be interrupted: its process goes
			return nil, err
		}
		rt.pool.release(p)
		if r.T == FrameError {
			return nil, rt.taskError(r.Err)
		}
		return objects.RawMessage(r.Value), nil
	}
}

func (rt *Runtime) taskError(e *LangError) error {
	if e == nil {
		e = &LangError{Message: "error frame without an error"}
	}
	return &tasks.RemoteError{Kind: tasks.KindHandler, Lang: rt.hello.Lang, Type: e.Type, Message: e.Message, Traceback: e.Traceback, Exc: e.Exc}
}
