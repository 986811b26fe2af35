package fray_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/tasks"
	"github.com/frayhq/fray/worker"
)

type bumpArg struct {
	Counter *actors.Handle `cbor:"counter"`
	By      int64          `cbor:"by"`
}

func TestActorHandleInTaskArgumentIsCalledFromTheWorker(t *testing.T) {
	ctx := frayt.Context(t, 60*time.Second)
	reg := tasks.NewRegistry()
	var client *fray.Client // the worker's client, as fray-worker puts in every handler context
	tasks.Register(reg, "bump", func(ctx context.Context, a bumpArg) (int64, error) {
		if a.Counter.Bound() {
			return 0, errors.New("handle arrived bound: it should travel as a name")
		}
		return fray.Call[int64](fray.WithClient(ctx, client), a.Counter, "Add", a.By)
	})
	c, err := fray.Connect(ctx, "local", fray.WithRegistry(reg))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	client = c
	h, err := c.CreateActor(ctx, actors.ClassCounter, "tally", 0)
	if err != nil {
		t.Fatal(err)
	}
	futs := make([]*tasks.Future, 5)
	for i := range futs {
		futs[i] = c.Run(ctx, "bump", bumpArg{Counter: h, By: 2})
	}
	for _, f := range futs {
		if err := f.Get(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	n, err := fray.Call[int64](ctx, h, "Get", nil)
	if err != nil || n != 10 {
		t.Fatalf("counter = %d, %v; want 10", n, err)
	}
}

func TestClientActorsGetIfExistsListAndHostInProcess(t *testing.T) {
	ctx := frayt.Context(t, 60*time.Second)
	c, err := fray.Connect(ctx, "local")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := c.CreateActor(ctx, actors.ClassEcho, "echo", nil, actors.GetIfExists())
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.CreateActor(ctx, actors.ClassEcho, "echo", nil, actors.GetIfExists())
	if err != nil || b.String() != a.String() {
		t.Fatalf("get-if-exists: %v %v", b, err)
	}
	got, err := fray.Call[string](ctx, b, "Echo", "hi")
	if err != nil || got != "hi" {
		t.Fatalf("Echo: %q %v", got, err)
	}
	hosted, err := c.HostActor(ctx, "test.Local", "local", &actors.Counter{})
	if err != nil {
		t.Fatal(err)
	}
	defer hosted.Shutdown(ctx)
	if n, err := fray.Call[int64](ctx, hosted.Handle(), "Add", 4); err != nil || n != 4 {
		t.Fatalf("hosted Add: %d %v", n, err)
	}
	recs, err := c.ListActors(ctx, "")
	if err != nil || len(recs) != 2 {
		t.Fatalf("ListActors: %v %v", recs, err)
	}
	if _, err := c.GetActor(ctx, "missing"); !errors.Is(err, actors.ErrNotFound) {
		t.Fatalf("GetActor missing: %v", err)
	}
}

// The README's recipe for a worker built with worker.New: HandlerContext
// puts the client in each handler's context, so a handle in a task
// argument can be called; without it the call fails with ErrNotBound.
func TestWorkerBuiltWithHandlerContextCallsActorHandlesFromTaskArguments(t *testing.T) {
	srv := frayt.Server(t)
	ctx := frayt.Context(t, 60*time.Second)
	c, err := fray.Connect(ctx, srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reg := tasks.NewRegistry()
	tasks.Register(reg, "bump", func(ctx context.Context, a bumpArg) (int64, error) {
		return fray.Call[int64](ctx, a.Counter, "Add", a.By)
	})
	areg := actors.NewRegistry()
	if err := actors.RegisterBuiltins(areg); err != nil {
		t.Fatal(err)
	}
	start := func(pool string, o worker.Options) {
		o.Pool, o.Registry, o.Logger = pool, reg, slog.New(slog.DiscardHandler)
		o.Plugins = []worker.Plugin{actors.NewHost(areg, actors.HostOptions{})}
		w, err := worker.New(c.NATS(), o)
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = w.Run(wctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	start("bound", worker.Options{
		HandlerContext: func(ctx context.Context) context.Context { return fray.WithClient(ctx, c) }})
	start("plain", worker.Options{})
	frayt.Eventually(t, 10*time.Second, "both workers registered", func() bool { return len(c.Workers()) == 2 })

	h, err := c.CreateActor(ctx, actors.ClassCounter, "tally", 0, actors.Pool("bound"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := fray.Run[bumpArg, int64](ctx, c, "bump", bumpArg{Counter: h, By: 2}, tasks.Pool("bound")).Get(ctx)
	if err != nil || n != 2 {
		t.Fatalf("bump on a worker with HandlerContext: %d, %v; want 2", n, err)
	}
	_, err = fray.Run[bumpArg, int64](ctx, c, "bump", bumpArg{Counter: h, By: 2}, tasks.Pool("plain")).Get(ctx)
	if err == nil || !strings.Contains(err.Error(), "handle not bound to a client") {
		t.Fatalf("bump on a worker without HandlerContext: %v; want the not-bound error", err)
	}
}

// fray.Call with a nil handle (a CreateActor or GetActor error ignored)
// returns actors.ErrNotBound; it does not panic.
func TestCallWithNilHandleIsErrNotBound(t *testing.T) {
	ctx := frayt.Context(t, 10*time.Second)
	if _, err := fray.Call[int](ctx, nil, "Get", nil); !errors.Is(err, actors.ErrNotBound) {
		t.Fatalf("fray.Call with a nil handle: %v; want actors.ErrNotBound", err)
	}
}
