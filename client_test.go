package fray_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/tasks"
)

func TestConnectLocalRunsRegisteredFunctionsWithNoSetup(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	reg := tasks.NewRegistry()
	tasks.Register(reg, "upper", func(_ context.Context, s string) (string, error) { return strings.ToUpper(s), nil })
	c, err := fray.Connect(ctx, "local", fray.WithRegistry(reg))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := fray.Run[string, string](ctx, c, "upper", "fray").Get(ctx)
	if err != nil || got != "FRAY" {
		t.Fatalf("upper: %q %v", got, err)
	}
	// The built-ins are served too.
	echo, err := fray.Run[[]int, []int](ctx, c, "fray.echo", []int{1, 2}).Get(ctx)
	if err != nil || len(echo) != 2 {
		t.Fatalf("echo: %v %v", echo, err)
	}
	// Objects round-trip, and a ref argument is resolved on the worker.
	ref, err := c.Put(ctx, "by reference")
	if err != nil {
		t.Fatal(err)
	}
	var back string
	if err := c.Get(ctx, ref, &back); err != nil || back != "by reference" {
		t.Fatalf("get: %q %v", back, err)
	}
	up, err := fray.RunRef[string](ctx, c, "upper", ref).Get(ctx)
	if err != nil || up != "BY REFERENCE" {
		t.Fatalf("upper(ref): %q %v", up, err)
	}
	// Wait over futures from the client, untyped and typed.
	futs := []*tasks.Future{c.Run(ctx, "upper", "a"), c.Run(ctx, "upper", "b")}
	ready, pending, err := fray.Wait(ctx, futs, 2, 10*time.Second)
	if err != nil || len(ready) != 2 || len(pending) != 0 {
		t.Fatalf("wait: %d ready, %d pending, %v", len(ready), len(pending), err)
	}
	typed := []tasks.TypedFuture[string]{fray.Run[string, string](ctx, c, "upper", "c")}
	tready, _, err := fray.Wait(ctx, typed, 1, 10*time.Second)
	if err != nil || len(tready) != 1 {
		t.Fatalf("wait on typed futures: %d ready, %v", len(tready), err)
	}
	if v, err := tready[0].Get(ctx); err != nil || v != "C" {
		t.Fatalf("typed future from Wait: %q %v", v, err)
	}
	if err := c.Run(ctx, "nosuch", 1).Get(ctx, nil); !errors.Is(err, tasks.ErrUnknownFunction) {
		t.Fatalf("unknown function: %v", err)
	}
}

func TestConnectToARunningClusterByURL(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	local, err := fray.Connect(ctx, "local")
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	remote, err := fray.Connect(ctx, local.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	got, err := fray.Run[string, string](ctx, remote, "fray.echo", "over the wire").Get(ctx)
	if err != nil || got != "over the wire" {
		t.Fatalf("echo: %q %v", got, err)
	}
	// A future made in one client resolves by id in another.
	fut := local.Run(ctx, "fray.echo", 7)
	f2, err := remote.Future(fut.ID())
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := f2.Get(ctx, &n); err != nil || n != 7 {
		t.Fatalf("by id: %d %v", n, err)
	}
}

func TestConnectRefusesUnprovisionedServersClearly(t *testing.T) {
	ctx := frayt.Context(t, 10*time.Second)
	if _, err := fray.Connect(ctx, "nats://127.0.0.1:1"); err == nil {
		t.Fatal("connect to a closed port succeeded")
	}
}

func TestParseSpecAcceptsTheDocumentedForms(t *testing.T) {
	good := map[string]fray.Spec{
		"":                                       {Kind: fray.SpecLocal},
		"local":                                  {Kind: fray.SpecLocal},
		"nats://h:4222":                          {Kind: fray.SpecNATS, URLs: []string{"nats://h:4222"}},
		"nats://a:1,nats://b:2":                  {Kind: fray.SpecNATS, URLs: []string{"nats://a:1", "nats://b:2"}},
		"ray?address=http://h:8265&namespace=rl": {Kind: fray.SpecRay, Params: map[string]string{"address": "http://h:8265", "namespace": "rl"}},
		"iris?controller=http://h:10000":         {Kind: fray.SpecIris, Params: map[string]string{"controller": "http://h:10000"}},
		"ray?address=http://h:8265&nats=nats://b:4222": {Kind: fray.SpecRay, URLs: []string{"nats://b:4222"}},
	}
	for in, want := range good {
		got, err := fray.ParseSpec(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if got.Kind != want.Kind || strings.Join(got.URLs, ",") != strings.Join(want.URLs, ",") {
			t.Errorf("%q: got %+v, want %+v", in, got, want)
		}
		for k, v := range want.Params {
			if got.Params[k] != v {
				t.Errorf("%q: param %s = %q, want %q", in, k, got.Params[k], v)
			}
		}
	}
	for _, in := range []string{"redis://h", "ray", "ray?address=h:8265", "iris?controller=", "nats://", "ray?address=http://h:1&nats=redis://x", "k8s"} {
		_, err := fray.ParseSpec(in)
		if !errors.Is(err, fray.ErrBadSpec) || !strings.Contains(err.Error(), "accepted forms") {
			t.Errorf("%q: %v, want ErrBadSpec listing the accepted forms", in, err)
		}
	}
}

func TestCloseOfLocalClientReturnsPromptlyWhileATaskRuns(t *testing.T) {
	ctx := frayt.Context(t, 60*time.Second)
	c, err := fray.Connect(ctx, "local")
	if err != nil {
		t.Fatal(err)
	}
	c.Run(ctx, "fray.sleep", 120.0)
	frayt.Eventually(t, 15*time.Second, "fray.sleep running on the local worker", func() bool {
		for _, w := range c.Workers() {
			if w.Running > 0 {
				return true
			}
		}
		return false
	})
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
		t.Logf("Close took %s", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("Close of a local client still blocked 5 s after a task started: it waits out the worker's drain")
	}
}

func TestHandlersRegisteredAfterConnectAreServedByTheLocalWorkers(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	c, err := fray.Connect(ctx, "local", fray.WithLocalWorkers(2, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := fray.Register(ctx, c, "triple", func(_ context.Context, x int) (int, error) { return 3 * x, nil }); err != nil {
		t.Fatal(err)
	}
	got, err := fray.Run[int, int](ctx, c, "triple", 3).Get(ctx)
	if err != nil || got != 9 {
		t.Fatalf("triple(3) = %d, %v", got, err)
	}
	if err := fray.Register(ctx, c, "triple", func(_ context.Context, x int) (int, error) { return x, nil }); !errors.Is(err, tasks.ErrDuplicate) {
		t.Fatalf("second Register of a name: %v", err)
	}

	bare, err := fray.Connect(ctx, "local", fray.WithLocalWorkers(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	if err := fray.Register(ctx, bare, "triple", func(_ context.Context, x int) (int, error) { return x, nil }); !errors.Is(err, fray.ErrNotLocal) {
		t.Fatalf("Register without in-process workers: %v", err)
	}
}
