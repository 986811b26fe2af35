package actors

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/nats-io/nats.go/jetstream"
)

// crashCopy returns a copy of a running broker's store as a SIGKILL would
// leave it: the files as they are on disk now, without the state a clean
// shutdown writes.
func crashCopy(t *testing.T, dir string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "crashed")
	if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
		t.Fatalf("copy store: %v", err)
	}
	return dst
}

// A shut-down actor's standing record is removed for good: a broker that
// crashes (SIGKILL) after the removal's marker expired must not bring it
// back on restart, or the supervisor's sweep would take the actor for one
// lost during an outage and restart it.
func TestStandingRecordOfShutDownActorStaysRemovedAfterBrokerCrash(t *testing.T) {
	old := standingMarkerTTL
	standingMarkerTTL = time.Second
	t.Cleanup(func() { standingMarkerTTL = old })
	dir := t.TempDir()
	srv := frayt.ServerAt(t, dir)
	startWorker(t, srv.ClientURL(), "wa", nil, testRegistry(t))
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	h, err := c.CreateActor(ctx, ClassCounter, "ended", 0, MaxRestarts(-1), Detached())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	_, js := frayt.Connect(t, srv.ClientURL())
	st, err := js.Stream(ctx, "KV_"+broker.BucketActors)
	if err != nil {
		t.Fatal(err)
	}
	subject := "$KV." + broker.BucketActors + "." + standingKey("default", "ended")
	frayt.Eventually(t, 10*time.Second, "standing record and its removal marker gone", func() bool {
		_, err := st.GetLastMsgForSubject(ctx, subject)
		return errors.Is(err, jetstream.ErrMsgNotFound)
	})

	crashed := frayt.ServerAt(t, crashCopy(t, dir))
	_, cjs := frayt.Connect(t, crashed.ClientURL())
	kv, err := cjs.KeyValue(ctx, broker.BucketActors)
	if err != nil {
		t.Fatal(err)
	}
	if rec, _, err := getRecord(ctx, kv, standingKey("default", "ended")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("standing record of the shut-down actor after a broker crash: %+v, %v; want none", rec, err)
	}
}
