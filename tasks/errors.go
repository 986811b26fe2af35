package tasks

import (
	"errors"
	"fmt"

	"github.com/frayhq/fray/internal/taskwire"
)

var (
	// ErrQueueFull means the task queue reached its limits; the task was
	// not queued. Retry later or raise broker limits.
	ErrQueueFull = errors.New("tasks: queue full")
	// ErrUnknownFunction means no live worker of the pool registers the
	// function.
	ErrUnknownFunction = errors.New("tasks: unknown function")
	// ErrCancelled means the task was cancelled.
	ErrCancelled = errors.New("tasks: cancelled")
	// ErrTimeout means an attempt ran past the task's timeout.
	ErrTimeout = errors.New("tasks: timeout")
	// ErrTooLarge means a value is over the configured size limit.
	ErrTooLarge = errors.New("tasks: value too large")
	// ErrBadInput means a task or its argument could not be decoded.
	ErrBadInput = errors.New("tasks: bad input")
	// ErrExhausted means a task was delivered its maximum number of times
	// without producing a result (its workers crashed).
	ErrExhausted = errors.New("tasks: deliveries exhausted")
	// ErrBadName reports an invalid pool or function name.
	ErrBadName = taskwire.ErrBadName
	// ErrBadID reports a malformed future id.
	ErrBadID = taskwire.ErrBadID
	// ErrNoResult means a future's result is not (or no longer) stored.
	ErrNoResult = errors.New("tasks: no result")
	// ErrRuntimeCrashed means the language runtime process running the
	// task died mid-task (kind runtime_crashed).
	ErrRuntimeCrashed = errors.New("tasks: runtime process crashed")
	// ErrDuplicate reports a function registered twice.
	ErrDuplicate = errors.New("tasks: function already registered")
)

// RemoteError is a task's failure as recorded by the worker that ran it.
//
// A handler may also return one to describe its failure in full (a handler
// running code of another language does): the executor records its Kind
// (KindHandler when empty; KindRuntimeCrashed is retried while the task has
// retries), Message, Type, Lang, Traceback and Exc, and fills in the rest.
type RemoteError struct {
	TaskID  string
	Kind    string // one of the Kind* constants
	Fn      string
	Message string
	Type    string // the error's type name in Lang (Go: %T of the error, or "panic"): an opaque label
	Worker  string
	Attempt int
	// Lang is the language the error was raised in ("go", "python").
	Lang string
	// Traceback is the formatted remote traceback, if any.
	Traceback string
	// Exc is the language's own encoding of the error (Python: pickled).
	Exc []byte
}

func (e *RemoteError) Error() string {
	where := ""
	if e.Worker != "" {
		where = fmt.Sprintf(" on worker %s (attempt %d)", e.Worker, e.Attempt)
	}
	typ := ""
	if e.Type != "" {
		typ = e.Type + ": "
	}
	task := e.TaskID
	if e.Fn != "" { // a cancellation through a future obtained by id names no function
		task = e.Fn + " " + task
	}
	return fmt.Sprintf("task %s failed%s: %s%s", task, where, typ, e.Message)
}

// Is maps a failure kind onto the package's sentinels, so callers can write
// errors.Is(err, tasks.ErrCancelled).
func (e *RemoteError) Is(target error) bool {
	switch target {
	case ErrCancelled:
		return e.Kind == KindCancelled
	case ErrUnknownFunction:
		return e.Kind == KindUnknownFn
	case ErrTimeout:
		return e.Kind == KindTimeout
	case ErrBadInput:
		return e.Kind == KindBadInput
	case ErrExhausted:
		return e.Kind == KindExhausted
	case ErrRuntimeCrashed:
		return e.Kind == KindRuntimeCrashed
	}
	return false
}

func remoteError(id string, ei *ErrorInfo) *RemoteError {
	return &RemoteError{TaskID: id, Kind: ei.Kind, Fn: ei.Fn, Message: ei.Message, Type: ei.Type, Worker: ei.Worker, Attempt: ei.Attempt,
		Lang: ei.Lang, Traceback: ei.Traceback, Exc: ei.Exc}
}

type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

// Retryable marks a handler error as worth retrying: the task runs again
// (after its backoff) while it has retries left.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return retryable{err}
}

// IsRetryable reports whether err was marked with Retryable.
func IsRetryable(err error) bool {
	var r retryable
	return errors.As(err, &r)
}
