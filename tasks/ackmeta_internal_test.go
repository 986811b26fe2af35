package tasks

import (
	"bytes"
	"testing"

	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
)

// ackMeta reads what nats.go's Metadata reads from every ack subject form,
// and refuses what it refuses.
func TestAckMetaReadsWhatNatsMetadataReads(t *testing.T) {
	for _, reply := range []string{
		"$JS.ACK.FRAY_TASKS.pool-default.3.1042.977.1733550000000000000.12",
		"$JS.ACK._.ACCHASH.FRAY_TASKS.pool-default.1.7.7.1733550000000000000.0.RANDOM",
		"$JS.ACK.hub.ACCHASH.FRAY_TASKS.pool-default.18446744073709.99.5.1733550000000000000.0",
		"$JS.ACK.S.C.0.0.0.0.0",
	} {
		want, err := (&nats.Msg{Reply: reply, Sub: &nats.Subscription{}}).Metadata()
		if err != nil {
			t.Fatalf("%s: nats.go refuses it: %v", reply, err)
		}
		a, err := ackMeta(reply)
		if err != nil || a.delivered != want.NumDelivered || a.streamSeq != want.Sequence.Stream || a.pending != want.NumPending {
			t.Errorf("%s: got %+v, %v; want delivered %d, stream sequence %d, pending %d", reply, a, err, want.NumDelivered, want.Sequence.Stream, want.NumPending)
		}
	}
	for _, reply := range []string{
		"",
		"_INBOX.abc.1",
		"$JS.ACK.S.C.1.2.3.4",     // 8 tokens
		"$JS.ACK.D.H.S.C.1.2.3.4", // 10 tokens
		"$JS.ACK.S.C.x.2.3.4.5",   // delivered not a number
		"$JS.ACK.S.C.1..3.4.5",    // empty sequence
		"$JS.API.S.C.1.2.3.4.5",   // not an ack
		"$JS.ACK.S.C.99999999999999999999.2.3.4.5", // over uint64
	} {
		if a, err := ackMeta(reply); err == nil {
			t.Errorf("%q: got %+v and no error", reply, a)
		}
	}
}

// The shared encoding of a nil result is what the encoder makes of nil.
func TestTheNilResultIsEncodedAsTheEncoderWould(t *testing.T) {
	want, err := objects.Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(nullValue, want) {
		t.Fatalf("nullValue is %x, the encoder makes %x", nullValue, want)
	}
}
