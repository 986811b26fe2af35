package taskwire

import (
	"fmt"

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

// The decoders' byte values (a task's arg, a result's value) are subslices
// of the bytes decoded, not copies: a caller hands them bytes it no longer
// changes (a received message's data, which nats.go makes per message).

// DecodeTask decodes a task record and checks its version and fields.
func DecodeTask(data []byte) (*Task, error) {
	var t Task
	if err := DecodeTaskInto(data, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// DecodeTaskInto is DecodeTask into a zero t (a worker's task run holds it).
func DecodeTaskInto(data []byte, t *Task) error {
	if err := unmarshalTask(data, t); err != nil {
		return err
	}
	if t.V != TaskVersion {
		return fmt.Errorf("task record version %d, this worker knows %d", t.V, TaskVersion)
	}
	if t.ID == "" || t.Fn == "" || !ValidToken(t.Owner) {
		return fmt.Errorf("task record lacks id, fn or a valid owner")
	}
	if t.Arg != nil && t.ArgRef != nil {
		return fmt.Errorf("task record has both arg and arg_ref")
	}
	return nil
}

// DecodeResult decodes a result record and checks its version.
func DecodeResult(data []byte) (*Result, error) {
	var r Result
	if err := DecodeResultInto(data, &r, nil); err != nil {
		return nil, err
	}
	return &r, nil
}

// DecodeResultInto is DecodeResult into a zero res. A text value equal to
// like's (ID, Fn, Pool, Worker; like may be nil) is like's string, not a
// copy: a producer expects its future's id and function, and the pool and
// worker of its last result, so a result it expects costs no allocation.
func DecodeResultInto(data []byte, res, like *Result) error {
	if err := unmarshalResult(data, res, like); err != nil {
		return err
	}
	if res.V != ResultVersion {
		return fmt.Errorf("result record version %d, this client knows %d", res.V, ResultVersion)
	}
	return nil
}
