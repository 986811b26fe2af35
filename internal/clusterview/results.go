package clusterview

import (
	"strings"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/tasks"
	"github.com/nats-io/nats.go"
)

// Result is what the view reads of a stored task result (tasks.Result
// without its value).
type Result struct {
	ID          string           `cbor:"id"`
	Error       *tasks.ErrorInfo `cbor:"error,omitempty"`
	Fn          string           `cbor:"fn,omitempty"`
	Pool        string           `cbor:"pool,omitempty"`
	SubmittedMS int64            `cbor:"submitted_ms,omitempty"`
	Worker      string           `cbor:"worker,omitempty"`
	Attempt     int              `cbor:"attempt,omitempty"`
	StartedMS   int64            `cbor:"started_ms,omitempty"`
	FinishedMS  int64            `cbor:"finished_ms,omitempty"`
}

// Failure is one recent failed task.
type Failure struct {
	FutureID string `json:"future_id"`
	Pool     string `json:"pool"`
	Fn       string `json:"fn"`
	Kind     string `json:"kind"`
	Type     string `json:"type,omitempty"`
	Message  string `json:"message"`
	Worker   string `json:"worker,omitempty"`
	Attempt  int    `json:"attempt,omitempty"`
	UnixMS   int64  `json:"t"`
}

// maxFailureMessage bounds a kept failure's message.
const maxFailureMessage = 2000

// Dropped is the number of stored results the view's subscription dropped
// because the view fell behind.
func (v *View) Dropped() int64 {
	sub := v.sub.Load()
	if sub == nil {
		return 0
	}
	n, err := sub.Dropped()
	if err != nil {
		return 0
	}
	return int64(n)
}

func decode(b []byte, v any) error { return objects.Unmarshal(b, v) }

// subscribeResults hears every stored result on fray.stored.>.
func (v *View) subscribeResults(nc *nats.Conn) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(broker.SubjectStoredPrefix+">", func(m *nats.Msg) {
		var r Result
		if decode(m.Data, &r) != nil {
			return
		}
		if v.o.OnResult != nil {
			v.o.OnResult(&r)
		}
		if r.Error != nil {
			v.addFailure(m.Subject, &r)
		}
	})
	if err != nil {
		return nil, err
	}
	// A reader that falls behind drops messages here rather than letting
	// them pile up; the loss is counted.
	if err := sub.SetPendingLimits(64<<10, 64<<20); err != nil {
		return nil, err
	}
	v.sub.Store(sub)
	return sub, nil
}

func (v *View) addFailure(subject string, r *Result) {
	fid := strings.TrimPrefix(subject, broker.SubjectStoredPrefix)
	msg := r.Error.Message
	if len(msg) > maxFailureMessage {
		msg = msg[:maxFailureMessage] + "…"
	}
	fn := r.Fn
	if fn == "" {
		fn = r.Error.Fn
	}
	at := r.FinishedMS
	if at == 0 {
		at = time.Now().UnixMilli()
	}
	f := Failure{FutureID: fid, Pool: r.Pool, Fn: fn, Kind: r.Error.Kind, Type: r.Error.Type, Message: msg,
		Worker: r.Error.Worker, Attempt: r.Error.Attempt, UnixMS: at}
	v.mu.Lock()
	v.failures = append(v.failures, f)
	if len(v.failures) > v.o.Failures {
		v.failures = append(v.failures[:0:0], v.failures[len(v.failures)-v.o.Failures:]...)
	}
	v.mu.Unlock()
	v.notify()
}
