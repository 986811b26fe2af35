package objects

import (
	"errors"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/nats-io/nats.go/jetstream"
)

// smallChunkStore is a store with 1 KiB chunks on a fresh server.
func smallChunkStore(t *testing.T) *Store {
	t.Helper()
	_, js := frayt.Connect(t, frayt.Server(t).ClientURL())
	st, err := New(frayt.Context(t, 10*time.Second), js, Options{ChunkSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestLeaderGetReadsWhatDirectGetReads(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	st := smallChunkStore(t)
	ref, err := st.PutBytes(ctx, make([]byte, 3000))
	if err != nil {
		t.Fatal(err)
	}
	meta := metaSubject(st.bucket, ref.Digest)
	direct, err := st.stream.GetLastMsgForSubject(ctx, meta)
	if err != nil {
		t.Fatal(err)
	}
	lead, err := st.leaderGet(ctx, msgGetRequest{LastFor: meta})
	if err != nil {
		t.Fatal(err)
	}
	if lead.Sequence != direct.Sequence || string(lead.Data) != string(direct.Data) || !lead.Time.Equal(direct.Time) {
		t.Fatalf("leader get %+v, direct get %+v", lead, direct)
	}
	info, _ := decodeMeta(lead.Data)
	chunk, err := st.leaderGet(ctx, msgGetRequest{Seq: 1, NextFor: chunkSubject(st.bucket, info.NUID)})
	if err != nil || len(chunk.Data) != 1024 {
		t.Fatalf("leader next-by-subject get: %v", err)
	}
	if _, err := st.leaderGet(ctx, msgGetRequest{LastFor: metaSubject(st.bucket, "nope")}); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("leader get of nothing: %v, want ErrMsgNotFound", err)
	}
}

// A consumer source whose consumer delivers nothing while every chunk is
// there replaces the consumer after idleCheck and reads on, from the chunk
// after the last one read.
func TestAStalledChunkConsumerIsReplaced(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	st := smallChunkStore(t)
	want := make([]byte, 3000)
	for i := range want {
		want[i] = byte(i)
	}
	ref, err := st.PutBytes(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := st.stream.GetLastMsgForSubject(ctx, metaSubject(st.bucket, ref.Digest))
	if err != nil {
		t.Fatal(err)
	}
	info, _ := decodeMeta(meta.Data)
	c, err := st.streamChunks(ctx, ref, info)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	first, _, err := c.next(ctx)
	if err != nil || len(first) != 1024 {
		t.Fatalf("first chunk: %d bytes, %v", len(first), err)
	}
	// The stall: swap in a consumer on a subject with no chunks.
	c.close()
	stalled := *c
	stalled.nuid = "no-such-object"
	if c.cons, c.it, err = stalled.open(ctx); err != nil {
		t.Fatal(err)
	}
	got := first
	for len(got) < len(want) {
		b, _, err := c.next(ctx)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(got, b...)
	}
	if string(got) != string(want) {
		t.Fatal("bytes differ after the consumer was replaced")
	}
}
