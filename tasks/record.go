package tasks

import (
	"fmt"
	"strings"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/objects"
)

// Record versions. A reader refuses a record whose version it does not know.
const (
	TaskVersion   = 1
	ResultVersion = 1
)

// Headers fray sets on task messages besides Nats-Msg-Id (= task id).
const (
	HeaderOwner = "Fray-Owner" // the producer's owner token, to report a task whose body cannot be decoded
	// HeaderPriorDeliveries is set on a copy of a task that a worker lacking
	// its function handed on: the deliveries that counted before the copy
	// (runs, crashes), so that hand-ons never use up retries or
	// max_deliveries. A delivery's attempt number is this plus the copy's
	// own delivery count.
	HeaderPriorDeliveries = "Fray-Prior-Deliveries"
)

// Task is the record published to fray.tasks.<pool>.
type Task struct {
	V     int    `cbor:"v"`
	ID    string `cbor:"id"`
	Owner string `cbor:"owner"`
	Fn    string `cbor:"fn"`
	// Arg is the CBOR encoding of the argument, when it travels inline.
	Arg []byte `cbor:"arg,omitempty"`
	// ArgRef names the argument's encoding in the object store instead.
	ArgRef *objects.Ref `cbor:"arg_ref,omitempty"`
	// TimeoutMS bounds each attempt; 0 means no timeout.
	TimeoutMS int64 `cbor:"timeout_ms,omitempty"`
	// Retries is how many more attempts a retryable handler error earns.
	Retries int `cbor:"retries,omitempty"`
	// BackoffMS is the delay before the first retry; it doubles each retry.
	BackoffMS int64 `cbor:"backoff_ms,omitempty"`
	// MaxDeliveries bounds deliveries that end without a result (crashed or
	// lost workers), on top of Retries.
	MaxDeliveries int   `cbor:"max_deliveries,omitempty"`
	SubmittedMS   int64 `cbor:"submitted_ms"`
}

// Result is the record published to fray.results.<owner>.<task-id>.
type Result struct {
	V  int    `cbor:"v"`
	ID string `cbor:"id"`
	// Value is the CBOR encoding of the handler's return value, inline.
	Value []byte `cbor:"value,omitempty"`
	// ValueRef names the value's encoding in the object store instead.
	ValueRef *objects.Ref `cbor:"value_ref,omitempty"`
	Error    *ErrorInfo   `cbor:"error,omitempty"`
	// Fn, Pool and SubmittedMS repeat the task's function, pool and
	// submission time, so that a reader of results alone (the broker's
	// metrics) can count outcomes by function and time the queue wait.
	// Absent from results not written by a worker (cancellations).
	Fn          string `cbor:"fn,omitempty"`
	Pool        string `cbor:"pool,omitempty"`
	SubmittedMS int64  `cbor:"submitted_ms,omitempty"`
	Worker      string `cbor:"worker,omitempty"`
	Attempt     int    `cbor:"attempt,omitempty"`
	StartedMS   int64  `cbor:"started_ms,omitempty"`
	FinishedMS  int64  `cbor:"finished_ms,omitempty"`
}

// Error kinds in ErrorInfo.Kind.
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

// ErrorInfo describes a failed task.
type ErrorInfo struct {
	Kind    string `cbor:"kind"`
	Fn      string `cbor:"fn,omitempty"`
	Message string `cbor:"message"`
	// Type is the error's type name in the language it was raised in
	// (Lang): for Go the %T of the handler's error, or "panic"; for Python
	// the qualified name, e.g. "builtins.ValueError". Readers in another
	// language treat it as an opaque label.
	Type    string `cbor:"type,omitempty"`
	Worker  string `cbor:"worker,omitempty"`
	Attempt int    `cbor:"attempt,omitempty"`
	// Lang is the language the error was raised in: "go", "python".
	Lang string `cbor:"lang,omitempty"`
	// Traceback is the formatted remote traceback, when the language has one.
	Traceback string `cbor:"traceback,omitempty"`
	// Exc is the language's own encoding of the error (Python: the pickled
	// exception), so a caller of that language can re-raise it; others
	// ignore it.
	Exc []byte `cbor:"exc,omitempty"`
}

// TaskSubject is the subject a pool's tasks are published on.
func TaskSubject(pool string) string { return broker.SubjectTasksPrefix + pool }

// defaultTaskSubject is TaskSubject(DefaultPool), built once.
var defaultTaskSubject = TaskSubject(DefaultPool)

// taskSubject is TaskSubject without building the default pool's subject
// on every submission.
func taskSubject(pool string) string {
	if pool == DefaultPool {
		return defaultTaskSubject
	}
	return TaskSubject(pool)
}

// ResultSubject is the subject of a task's result.
func ResultSubject(owner, id string) string {
	return broker.SubjectResultsPrefix + owner + "." + id
}

// StoredSubject is where a task's result is republished once stored.
func StoredSubject(owner, id string) string {
	return broker.SubjectStoredPrefix + owner + "." + id
}

// FutureID is the public id of a task: "<owner>.<task-id>", the two last
// tokens of its result subject.
func FutureID(owner, id string) string { return owner + "." + id }

// ParseFutureID splits a future id into owner and task id.
func ParseFutureID(fid string) (owner, id string, err error) {
	owner, id, ok := strings.Cut(fid, ".")
	if !ok || !validToken(owner) || !validToken(id) {
		return "", "", fmt.Errorf("%w: future id %q: want <owner>.<task-id>", ErrBadID, fid)
	}
	return owner, id, nil
}

// ValidName reports whether s can be a pool or function name: a non-empty
// NATS subject token (no spaces, dots or wildcards) of at most 128 bytes.
func validToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == '.' || r == '*' || r == '>' || r == 0x7f {
			return false
		}
	}
	return true
}

// CheckPool returns an error when pool cannot name a pool.
func CheckPool(pool string) error {
	if !validToken(pool) {
		return fmt.Errorf("%w: pool %q: want a non-empty name without spaces, '.', '*' or '>'", ErrBadName, pool)
	}
	return nil
}

func decodeTask(data []byte) (*Task, error) {
	var t Task
	if err := decodeTaskInto(data, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// decodeTaskInto is decodeTask into a zero t.
func decodeTaskInto(data []byte, t *Task) error {
	if err := unmarshalTask(data, t); err != nil {
		return err
	}
	if t.V != TaskVersion {
		return fmt.Errorf("task record version %d, this worker knows %d", t.V, TaskVersion)
	}
	if t.ID == "" || t.Fn == "" || !validToken(t.Owner) {
		return fmt.Errorf("task record lacks id, fn or a valid owner")
	}
	if t.Arg != nil && t.ArgRef != nil {
		return fmt.Errorf("task record has both arg and arg_ref")
	}
	return nil
}

func decodeResult(data []byte) (*Result, error) {
	var r Result
	if err := unmarshalResult(data, &r); err != nil {
		return nil, err
	}
	if r.V != ResultVersion {
		return nil, fmt.Errorf("result record version %d, this client knows %d", r.V, ResultVersion)
	}
	return &r, nil
}
