package fray_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/internal/frayt"
)

// A cancelled context on first use fails that call only: the next call
// builds the sub-client.
func TestJobsAndActorsAccessorsRetryAfterAFailedFirstUse(t *testing.T) {
	ctx := frayt.Context(t, 60*time.Second)
	c, err := fray.Connect(ctx, "local", fray.WithLocalWorkers(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()

	if _, err := c.Jobs(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Jobs(cancelled ctx) = %v, want context.Canceled", err)
	}
	jc, err := c.Jobs(ctx)
	if err != nil || jc == nil {
		t.Fatalf("Jobs after a failed first use: %v", err)
	}
	if again, _ := c.Jobs(ctx); again != jc {
		t.Fatal("Jobs built a second sub-client")
	}

	if _, err := c.Actors(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Actors(cancelled ctx) = %v, want context.Canceled", err)
	}
	ac, err := c.Actors(ctx)
	if err != nil || ac == nil {
		t.Fatalf("Actors after a failed first use: %v", err)
	}
	if _, err := c.ListActors(ctx, ""); err != nil {
		t.Fatalf("ListActors: %v", err)
	}
}

// Building the sub-clients races with Close without a data race, and once
// closed they are refused.
func TestSubClientsBuiltWhileTheClientClosesAreClosedWithIt(t *testing.T) {
	ctx := frayt.Context(t, 60*time.Second)
	c, err := fray.Connect(ctx, "local", fray.WithLocalWorkers(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = c.Actors(ctx) }()
		go func() { defer wg.Done(); _, _ = c.Jobs(ctx) }()
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if _, err := c.Actors(ctx); !errors.Is(err, fray.ErrClientClosed) {
		t.Fatalf("Actors after Close = %v, want ErrClientClosed", err)
	}
	if _, err := c.Jobs(ctx); !errors.Is(err, fray.ErrClientClosed) {
		t.Fatalf("Jobs after Close = %v, want ErrClientClosed", err)
	}
}
