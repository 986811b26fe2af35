package objects_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go/jetstream"
)

type env struct {
	st  *objects.Store
	js  jetstream.JetStream
	ctx context.Context
}

// newEnv starts a provisioned broker and binds a store with o.
func newEnv(t *testing.T, o objects.Options, po ...broker.ProvisionOptions) env {
	t.Helper()
	return newEnvTB(t, o, po...)
}

func newEnvTB(t testing.TB, o objects.Options, po ...broker.ProvisionOptions) env {
	t.Helper()
	srv := frayt.Server(t, po...)
	_, js := frayt.Connect(t, srv.ClientURL())
	ctx := frayt.Context(t, 60*time.Second)
	st, err := objects.New(ctx, js, o)
	if err != nil {
		t.Fatalf("objects.New: %v", err)
	}
	return env{st: st, js: js, ctx: ctx}
}

// liveObjects lists the bucket's objects as any NATS client sees them.
func (e env) liveObjects(t *testing.T) []*jetstream.ObjectInfo {
	t.Helper()
	obs, err := e.js.ObjectStore(e.ctx, e.st.Bucket())
	if err != nil {
		t.Fatal(err)
	}
	infos, err := obs.List(e.ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return infos
}

// chunkMsgs counts the chunk messages stored in the bucket, orphans
// included.
func (e env) chunkMsgs(t *testing.T) uint64 {
	t.Helper()
	s, err := e.js.Stream(e.ctx, "OBJ_"+e.st.Bucket())
	if err != nil {
		t.Fatal(err)
	}
	filter := "$O." + e.st.Bucket() + ".C.>"
	si, err := s.Info(e.ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range si.State.Subjects {
		n += c
	}
	return n
}

// consumers counts the bucket stream's consumers.
func (e env) consumers(t *testing.T) int {
	t.Helper()
	s, err := e.js.Stream(e.ctx, "OBJ_"+e.st.Bucket())
	if err != nil {
		t.Fatal(err)
	}
	si, err := s.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return si.State.Consumers
}

// pattern is n deterministic bytes that do not repeat with a short period.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}
