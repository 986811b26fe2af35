package actors

import (
	"testing"

	"github.com/frayhq/fray/internal/wirevec"
	"github.com/frayhq/fray/objects"
)

// The actor records of testdata/wire (see ../wire_vectors_test.go).
func TestWireVectorsActors(t *testing.T) {
	enc := func(v any) objects.RawMessage {
		b, err := objects.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	wirevec.Check(t, "actor_call", "Call", &callMsg{V: 1, Method: "Add", Arg: enc(5)})
	// A Python caller's argument: the pickled (args, kwargs), carried by Go as raw CBOR.
	pickled := append([]byte{0xda, 0x66, 0x72, 0x61, 0x79, 0x44}, 0x80, 0x05, 0x95, 0x2e)
	wirevec.Check(t, "actor_call_python", "Call", &callMsg{V: 1, Method: "add", Arg: pickled})
	wirevec.Check(t, "actor_reply", "Reply", &replyMsg{V: 1, Epoch: 1, Result: enc(map[string]any{"total": 7})})
	wirevec.Check(t, "actor_reply_error", "Reply", &replyMsg{V: 1, Epoch: 2, Err: &wireError{Type: "builtins.KeyError",
		Message: "'k'", Host: "host-1", Lang: "python", Traceback: "Traceback (most recent call last):\nKeyError: 'k'\n", Exc: []byte{0x80, 0x05}}})
	wirevec.Check(t, "actor_record", "Record", &Record{V: 1, Namespace: "default", Name: "curriculum", Class: "py.object", State: "ready",
		Epoch: 1, Host: "host-1", Arg: pickled, Pool: "default", NonPreemptible: true, MaxConcurrency: 1, MaxRestarts: -1,
		Index: -1, Calls: 3, CreatedMS: 1765000000000, StartedMS: 1765000000050, LeaseMS: 10000})
}
