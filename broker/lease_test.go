package broker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
)

func TestLeaseIsExclusiveRenewsAndExpires(t *testing.T) {
	srv := frayt.Server(t)
	_, js := frayt.Connect(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)

	l, err := broker.AcquireLease(ctx, js, broker.BucketWorkers, "w1", []byte("a"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := broker.AcquireLease(ctx, js, broker.BucketWorkers, "w1", []byte("b"), time.Second); !errors.Is(err, broker.ErrLeaseHeld) {
		t.Fatalf("second acquire: %v, want ErrLeaseHeld", err)
	}
	// Renewing past several TTLs keeps the key alive.
	start := time.Now()
	for time.Since(start) < 2500*time.Millisecond {
		if err := l.Renew(ctx, []byte("a2")); err != nil {
			t.Fatalf("renew: %v", err)
		}
		time.Sleep(300 * time.Millisecond) // renewal cadence, well inside the TTL
	}
	kv, _ := js.KeyValue(ctx, broker.BucketWorkers)
	e, err := kv.Get(ctx, "w1")
	if err != nil || string(e.Value()) != "a2" {
		t.Fatalf("get after renewals: %v %q", err, e)
	}
	// Without renewals the key expires and can be claimed again.
	var l2 *broker.Lease
	frayt.Eventually(t, 5*time.Second, "lease expires and is re-acquired", func() bool {
		l2, err = broker.AcquireLease(ctx, js, broker.BucketWorkers, "w1", []byte("b"), time.Second)
		return err == nil
	})
	if err := l.Renew(ctx, []byte("late")); !errors.Is(err, broker.ErrLeaseLost) {
		t.Fatalf("stale renew: %v, want ErrLeaseLost", err)
	}
	if err := l2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, "w1"); err == nil {
		t.Fatal("released key still present")
	}
}
