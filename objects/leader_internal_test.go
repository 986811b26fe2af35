package objects

import (
	"errors"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/nats-io/nats.go/jetstream"
)

func TestLeaderGetReadsWhatDirectGetReads(t *testing.T) {
	srv := frayt.Server(t)
	_, js := frayt.Connect(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	st, err := New(ctx, js, Options{ChunkSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
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
