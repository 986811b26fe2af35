package tasks

import "context"

// TaskInfo describes the task a handler is running.
type TaskInfo struct {
	ID       string
	FutureID string
	Fn       string
	Attempt  int
	Worker   string
	Pool     string
}

type taskInfoKey struct{}

// withTaskInfo carries ti by pointer (no copy boxed per task); nobody
// writes *ti once it is in a context.
func withTaskInfo(ctx context.Context, ti *TaskInfo) context.Context {
	return context.WithValue(ctx, taskInfoKey{}, ti)
}

// taskContext is withTaskInfo's context as a value: an executor's task run
// holds one, so a handler's context costs no allocation of its own. Like
// context.WithValue's, it passes every other key, the parent's
// cancellation and deadline through.
type taskContext struct {
	context.Context
	info *TaskInfo
}

func (c *taskContext) Value(key any) any {
	if key == (taskInfoKey{}) {
		return c.info
	}
	return c.Context.Value(key)
}

// ContextWithTask returns ctx carrying ti, as the executor gives it to a
// handler, for running a handler outside an executor (tests, adapters).
func ContextWithTask(ctx context.Context, ti TaskInfo) context.Context { return withTaskInfo(ctx, &ti) }

// CurrentTask returns the task a handler's context belongs to.
func CurrentTask(ctx context.Context) (TaskInfo, bool) {
	ti, ok := ctx.Value(taskInfoKey{}).(*TaskInfo)
	if !ok {
		return TaskInfo{}, false
	}
	return *ti, true
}
