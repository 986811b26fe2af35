package tasks

import "github.com/frayhq/fray/internal/taskwire"

// Error kinds in RemoteError.Kind (the result record's error kind).
const (
	KindHandler   = "handler"   // the handler returned an error
	KindPanic     = "panic"     // the handler panicked
	KindTimeout   = "timeout"   // the attempt ran past its timeout
	KindCancelled = "cancelled" // Future.Cancel was called
	KindUnknownFn = "unknown_function"
	KindBadInput  = "bad_input" // the task or its argument could not be decoded
	KindExhausted = "exhausted" // delivered MaxDeliveries times without a result
	KindObject    = "object"    // an argument or result object could not be read or written
	// KindRuntimeCrashed: the language runtime process running the task
	// died mid-task (killed, crashed, exited); retried per Retries.
	KindRuntimeCrashed = "runtime_crashed"
)

// defaultTaskSubject is taskwire.TaskSubject(DefaultPool), built once.
var defaultTaskSubject = taskwire.TaskSubject(DefaultPool)

// taskSubject is taskwire.TaskSubject without building the default pool's subject
// on every submission.
func taskSubject(pool string) string {
	if pool == DefaultPool {
		return defaultTaskSubject
	}
	return taskwire.TaskSubject(pool)
}

// Result is a task's result record, as Future.Result and Producer.Lookup
// return it (PROTOCOL.md, "Tasks").
type Result = taskwire.Result

// ErrorInfo describes a failed task in its Result; Future.Get and
// Future.Result turn it into a *RemoteError.
type ErrorInfo = taskwire.ErrorInfo
