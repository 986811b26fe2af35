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
