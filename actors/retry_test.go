package actors

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
)

type blocker struct{ started *atomic.Int64 }

func (b *blocker) Block(ctx context.Context, ms int) (string, error) {
	b.started.Add(1)
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
	case <-ctx.Done():
		return "", ctx.Err()
	}
	self, _ := Current(ctx)
	return self.Host, nil
}

func TestCallRunningOnDeadInstanceIsRetriedOnlyWithMaxTaskRetries(t *testing.T) {
	srv := frayt.Server(t)
	var started atomic.Int64
	reg := NewRegistry()
	Register(reg, "test.Blocker", func(context.Context, struct{}) (*blocker, error) { return &blocker{started: &started}, nil })
	wa := startWorker(t, srv.ClientURL(), "wa", nil, reg)
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 60*time.Second)
	retried, err := c.CreateActor(ctx, "test.Blocker", "retried", nil, MaxRestarts(1), MaxTaskRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := c.CreateActor(ctx, "test.Blocker", "plain", nil, MaxRestarts(1))
	if err != nil {
		t.Fatal(err)
	}
	startWorker(t, srv.ClientURL(), "wb", nil, reg)
	startSupervisor(t, srv.ClientURL())
	f1 := retried.Call(ctx, "Block", 1000)
	f2 := plain.Call(ctx, "Block", 1000)
	frayt.Eventually(t, 5*time.Second, "both calls running on wa", func() bool { return started.Load() == 2 })
	_, js := frayt.Connect(t, srv.ClientURL())
	wa.kill(t, js)
	var host string
	if err := f1.Get(ctx, &host); err != nil || host != "wb" {
		t.Fatalf("call with MaxTaskRetries 1: %q %v; want a retry served by wb", host, err)
	}
	if err := f2.Get(ctx, nil); !errors.Is(err, ErrActorUnavailable) {
		t.Fatalf("call without retries: %v; want ErrActorUnavailable", err)
	}
	// The plain actor serves again from wb.
	if got := call[string](t, ctx, plain, "Block", 1); got != "wb" {
		t.Fatalf("after restart served by %q", got)
	}
}
