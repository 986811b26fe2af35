package actors

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
)

func TestConstructorArgumentOfWrongTypeIsErrBadArgument(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), "w1", nil, testRegistry(t))
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	_, err := c.CreateActor(ctx, ClassCounter, "typed", "not a number")
	var re *RemoteError
	if !errors.Is(err, ErrBadArgument) || !errors.As(err, &re) || re.Type != TypeBadArgument {
		t.Fatalf("create with a string for an int64 constructor: %v; want a RemoteError of type %s matching ErrBadArgument", err, TypeBadArgument)
	}
	if _, err := c.CreateActor(ctx, ClassCounter, "typed", 1); err != nil {
		t.Fatalf("name not freed: %v", err)
	}
}

func TestPanicMessageShowsThePanickingMethodWithoutRecoveryOrReflectFrames(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), "w1", nil, testRegistry(t))
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	h, err := c.CreateActor(ctx, ClassEcho, "panicky", nil)
	if err != nil {
		t.Fatal(err)
	}
	var re *RemoteError
	if err := h.Call(ctx, "Panic", "kaboom").Get(ctx, nil); !errors.As(err, &re) || re.Type != TypePanic || re.Lang != "go" {
		t.Fatalf("panic: %v (%+v); want a %s raised in go", err, re, TypePanic)
	}
	lines := strings.Split(re.Message, "\n")
	if lines[0] != "panic in fray.Echo.Panic: kaboom" || len(lines) < 3 ||
		!strings.HasSuffix(lines[1], "(*Echo).Panic") || !strings.Contains(lines[2], "builtin.go:") {
		t.Fatalf("panic message:\n%s\nwant the value, then the panicking method's frame first", re.Message)
	}
	for _, noise := range []string{"runtime/debug", "runtime.gopanic", "panic(", "reflect.", "(*instance)"} {
		if strings.Contains(re.Message, noise) {
			t.Fatalf("panic message contains %q:\n%s", noise, re.Message)
		}
	}
}

func TestGetWithDeadlineOnItsOwnContextIsErrActorUnavailableWrappingDeadlineExceeded(t *testing.T) {
	srv := frayt.Server(t)
	reg := NewRegistry()
	Register(reg, "test.Slow", func(context.Context, struct{}) (*slow, error) { return &slow{}, nil })
	startWorker(t, srv.ClientURL(), "w1", nil, reg)
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	h, err := c.CreateActor(ctx, "test.Slow", "slowpoke", nil)
	if err != nil {
		t.Fatal(err)
	}
	f := h.Call(ctx, "Work", 1000)
	gctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err = f.Get(gctx, nil)
	if !errors.Is(err, ErrActorUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get past its context's deadline: %v; want ErrActorUnavailable wrapping context.DeadlineExceeded", err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if err := f.Get(cctx, nil); !errors.Is(err, context.Canceled) || errors.Is(err, ErrActorUnavailable) {
		t.Fatalf("Get with a cancelled context: %v; want context.Canceled", err)
	}
	var got int
	if err := f.Get(ctx, &got); err != nil || got != 2000 {
		t.Fatalf("the call itself after Get gave up: %d, %v; want 2000", got, err)
	}
}
