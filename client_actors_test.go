package fray_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/tasks"
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
