package registry_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/registry"
	"github.com/frayhq/fray/worker"
	"github.com/nats-io/nats.go/jetstream"
)

// downgrade makes the cluster look provisioned by a fray of layout v
// without the pool directory: FRAY_POOLS deleted, FRAY_TASKS marked v.
func downgrade(t *testing.T, js jetstream.JetStream, v int) {
	t.Helper()
	ctx := frayt.Context(t, 10*time.Second)
	if err := js.DeleteKeyValue(ctx, broker.BucketPools); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, broker.StreamTasks)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Metadata[broker.MetadataLayoutKey] = strconv.Itoa(v)
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

// A worker of this version against a broker provisioned by an older fray
// (no pool directory) stops at once with ErrLayoutTooOld saying to
// upgrade fray-broker, instead of waiting for the directory forever.
func TestAWorkerAgainstAnOlderBrokerSaysToUpgradeIt(t *testing.T) {
	srv := frayt.Server(t)
	nc, js := frayt.Connect(t, srv.ClientURL())
	downgrade(t, js, broker.LayoutPools-1)

	w, err := worker.New(nc, worker.Options{ID: "new-worker", DrainTimeout: time.Nanosecond, Logger: testLogger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = w.Run(ctx)
	if ctx.Err() != nil {
		t.Fatalf("the worker still waited after 30 s (got %v)", err)
	}
	if !errors.Is(err, broker.ErrLayoutTooOld) || !strings.Contains(err.Error(), "upgrade fray-broker") ||
		!strings.Contains(err.Error(), broker.BucketPools) {
		t.Fatalf("got %v, want ErrLayoutTooOld naming %s and saying to upgrade fray-broker", err, broker.BucketPools)
	}
}

// A missing directory on a cluster of the current layout (a fray-broker
// still provisioning it) is waited for, not refused: the directory opens
// once the bucket exists.
func TestAMissingDirectoryOnTheCurrentLayoutIsWaitedFor(t *testing.T) {
	srv := frayt.Server(t)
	nc, js := frayt.Connect(t, srv.ClientURL())
	downgrade(t, js, broker.LayoutVersion)

	_, err := registry.NewView(frayt.Context(t, 10*time.Second), nc)
	if err == nil || errors.Is(err, broker.ErrLayoutTooOld) || !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("got %v, want the bucket not found (retried), not ErrLayoutTooOld", err)
	}
	if err := broker.Provision(frayt.Context(t, 30*time.Second), js, nc.ConnectedServerVersion(), broker.ProvisionOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := registry.NewView(frayt.Context(t, 10*time.Second), nc)
	if err != nil {
		t.Fatalf("after provisioning: %v", err)
	}
	v.Close()
}
