// Package observetest runs a whole local cluster with its metrics endpoint
// and dashboard for tests.
package observetest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/cluster"
	"github.com/frayhq/fray/internal/observe"
	"github.com/frayhq/fray/worker"
)

// Cluster is a running local cluster with metrics and a dashboard.
type Cluster struct {
	// MetricsURL is the metrics endpoint (".../metrics"); UIURL the
	// dashboard's root without the trailing slash.
	MetricsURL, UIURL string
	// Client is connected to the cluster.
	Client *fray.Client
}

// Start runs a cluster of one worker (configured by w) with a store in
// t.TempDir(), and serves its metrics and dashboard (with actions) on free
// loopback ports, all stopped when the test ends. It returns once they are
// ready (observe.Observer.Ready).
func Start(t testing.TB, ctx context.Context, w worker.Options) *Cluster {
	t.Helper()
	l, err := cluster.StartLocal(ctx, cluster.LocalOptions{Broker: broker.Options{StoreDir: t.TempDir(), Port: -1}, Workers: 1, Worker: w})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop() })
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	ml, ui := listen(), listen()
	x, err := observe.New(observe.Options{URL: l.URL(), Metrics: ml, UI: ui, UIActions: true, Refresh: 200 * time.Millisecond,
		ClientOptions: []fray.Option{fray.WithoutEnvCredentials()}})
	if err != nil {
		t.Fatal(err)
	}
	octx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- x.Run(octx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("metrics and dashboard: %v", err)
		}
	})
	// What a test does next is counted and shown only once the view is
	// loaded and subscribed.
	select {
	case <-x.Ready():
	case err := <-done:
		done <- err // for the clean-up
		t.Fatalf("metrics and dashboard ended while starting: %v", err)
	case <-ctx.Done():
		t.Fatalf("metrics and dashboard not ready: %v", ctx.Err())
	}
	c, err := fray.Connect(ctx, l.URL(), fray.WithoutEnvCredentials())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	uiURL := observe.URL(ui)
	return &Cluster{MetricsURL: observe.URL(ml) + "metrics", UIURL: uiURL[:len(uiURL)-1], Client: c}
}
