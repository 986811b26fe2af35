package actors

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/nats-io/nats.go/jetstream"
)

// A nil handle (say, from a CreateActor whose error was ignored) gives
// ErrNotBound from every call that needs its actor, never a panic.
func TestNilHandleIsErrNotBoundNotAPanic(t *testing.T) {
	ctx := frayt.Context(t, 10*time.Second)
	var h *Handle
	if err := h.Call(ctx, "Get", nil).Get(ctx, nil); !errors.Is(err, ErrNotBound) || !strings.Contains(err.Error(), "nil") {
		t.Fatalf("Call on a nil handle: %v; want ErrNotBound naming the nil handle", err)
	}
	if _, err := h.Submit(ctx, "Get", nil); !errors.Is(err, ErrNotBound) {
		t.Fatalf("Submit on a nil handle: %v; want ErrNotBound", err)
	}
	if err := h.Shutdown(ctx); !errors.Is(err, ErrNotBound) {
		t.Fatalf("Shutdown of a nil handle: %v; want ErrNotBound", err)
	}
	if _, err := h.Record(ctx); !errors.Is(err, ErrNotBound) {
		t.Fatalf("Record of a nil handle: %v; want ErrNotBound", err)
	}
	if h.Bound() || h.Bind(nil) != nil {
		t.Fatal("a nil handle is bound, or binds to a non-nil one")
	}
	if h.Name() != "" || h.Namespace() != "" || h.Class() != "" || !strings.Contains(h.String(), "nil") {
		t.Fatalf("accessors of a nil handle: %q %q %q %q", h.Name(), h.Namespace(), h.Class(), h.String())
	}
}

// An empty method name is refused at once as ErrNoSuchMethod, not sent to
// the actor (whose refusal read as a constructor failure).
func TestEmptyMethodNameIsErrNoSuchMethod(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), "wa", nil, testRegistry(t))
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	h, err := c.CreateActor(ctx, ClassCounter, "c", 0)
	if err != nil {
		t.Fatal(err)
	}
	err = h.Call(ctx, "", nil).Get(ctx, nil)
	if !errors.Is(err, ErrNoSuchMethod) || !strings.Contains(err.Error(), "empty method name") {
		t.Fatalf("call of an empty method name: %v; want ErrNoSuchMethod saying the name is empty", err)
	}
	if _, err := h.Submit(ctx, "", nil); !errors.Is(err, ErrNoSuchMethod) {
		t.Fatalf("Submit of an empty method name: %v; want ErrNoSuchMethod", err)
	}
	// Refused before any operation record was written.
	w, err := c.kv.Watch(ctx, "a_op.>", jetstream.IgnoreDeletes())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for e := range w.Updates() {
		if e == nil {
			break // the end of what is stored
		}
		t.Fatalf("operation record %s left by a refused Submit", e.Key())
	}
}
