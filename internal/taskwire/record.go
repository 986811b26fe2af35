package taskwire

import (
	"fmt"
	"strings"

	"github.com/frayhq/fray/objects"
)

// Record versions. A reader refuses a record whose version it does not know.
const (
	// TaskVersion is the task record producers write. Version 2 names the
	// task in its message's Nats-Msg-Id header, "<owner>.<task-id>" (its
	// future id), and not in the body; version 1 put the id and owner in
	// the body and the owner in a Fray-Owner header too. Workers read both.
	TaskVersion   = 2
	TaskVersionV1 = 1
	ResultVersion = 1
)

// DefaultMaxDeliveries bounds the deliveries without a result of a
// version-2 task whose record has no max_deliveries.
const DefaultMaxDeliveries = 5

// Headers fray sets on task messages besides Nats-Msg-Id.
const (
	// HeaderOwner is the producer's owner token on a version-1 task's
	// message (and its copies), to report a task whose body cannot be
	// decoded; a version-2 task's Nats-Msg-Id names its owner instead.
	HeaderOwner = "Fray-Owner"
	// HeaderPriorDeliveries is set on a copy of a task that a worker lacking
	// its function handed on: the deliveries that counted before the copy
	// (runs, crashes), so that hand-ons never use up retries or
	// max_deliveries. A delivery's attempt number is this plus the copy's
	// own delivery count.
	HeaderPriorDeliveries = "Fray-Prior-Deliveries"
)

// Task is the record published to fray.tasks.<pool>.
type Task struct {
	V int `cbor:"v"`
	// ID and Owner name the task. A version-2 record leaves them out (its
	// message's Nats-Msg-Id names the task); the decoder fills them in.
	ID    string `cbor:"id,omitempty"`
	Owner string `cbor:"owner,omitempty"`
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
	// lost workers), on top of Retries. Left out of a version-2 record (or
	// 0), it is DefaultMaxDeliveries; of a version-1 record, no bound.
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

// DecodeTask decodes the record of a task message named name (its
// Nats-Msg-Id, less the suffix of a worker's copy: TaskMsgName), and
// checks its version and fields: ID and Owner come from name for version
// 2, from the record for version 1.
func DecodeTask(data []byte, name string) (*Task, error) {
	var t Task
	if err := DecodeTaskInto(data, name, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// DecodeTaskInto is DecodeTask into a zero t (a worker's task run holds it).
func DecodeTaskInto(data []byte, name string, t *Task) error {
	if err := unmarshalTask(data, t); err != nil {
		return err
	}
	switch t.V {
	case TaskVersion:
		if t.ID != "" || t.Owner != "" {
			return fmt.Errorf("version-2 task record has an id or owner: its Nats-Msg-Id names the task")
		}
		owner, id, ok := ParseTaskMsgID(name)
		if !ok || owner == "" {
			return fmt.Errorf("version-2 task's Nats-Msg-Id names it %q, not <owner>.<task-id>", name)
		}
		t.Owner, t.ID = owner, id
		switch {
		case t.MaxDeliveries == 0:
			t.MaxDeliveries = DefaultMaxDeliveries
		case t.MaxDeliveries < 0:
			return fmt.Errorf("version-2 task record has max_deliveries %d: want a count, 1 or more", t.MaxDeliveries)
		}
	case TaskVersionV1:
		if !ValidToken(t.ID) || !ValidToken(t.Owner) {
			return fmt.Errorf("task record lacks a valid id or owner")
		}
	default:
		return fmt.Errorf("task record version %d, this worker knows %d and %d", t.V, TaskVersionV1, TaskVersion)
	}
	if t.Fn == "" {
		return fmt.Errorf("task record lacks fn")
	}
	if t.Arg != nil && t.ArgRef != nil {
		return fmt.Errorf("task record has both arg and arg_ref")
	}
	return nil
}

// TaskMsgID is the Nats-Msg-Id of a version-2 task: its future id.
func TaskMsgID(owner, id string) string { return FutureID(owner, id) }

// TaskMsgName is the name a task message's Nats-Msg-Id msgID gives the
// task: all of msgID, except on a worker's copy (copied: the message has
// a Fray-Prior-Deliveries header), whose Nats-Msg-Id is the name of the
// message it copies followed by "~<stream-seq>". Only the last '~' of a
// copy's id can be that suffix's: owners and task ids are tokens, which
// may hold '~' too.
func TaskMsgName(msgID string, copied bool) string {
	if copied {
		if i := strings.LastIndexByte(msgID, '~'); i >= 0 {
			return msgID[:i]
		}
	}
	return msgID
}

// ParseTaskMsgID reads a task's name (TaskMsgName): "<owner>.<task-id>"
// for version 2, the task id alone for version 1 (owner ""). ok reports
// whether the parts are valid tokens.
func ParseTaskMsgID(name string) (owner, id string, ok bool) {
	owner, id, two := strings.Cut(name, ".")
	if !two {
		return "", name, ValidToken(name)
	}
	return owner, id, ValidToken(owner) && ValidToken(id)
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
