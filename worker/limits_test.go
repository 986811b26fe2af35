package worker_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/worker"
	"github.com/nats-io/nats.go/jetstream"
)

// A worker that a consumer limit refuses says which limit and how to raise
// it, keeps retrying instead of exiting, and serves once the limit frees.
func TestAWorkerRefusedByTheConsumerLimitSaysSoAndRetries(t *testing.T) {
	// A nats-server allowing two consumers per stream, both of them taken
	// on the cancellations bucket, which a starting worker reads once.
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte("jetstream {\n  limits {\n    default_max_consumers: 2\n  }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := frayt.Context(t, 60*time.Second)
	srv, err := broker.Start(ctx, broker.Options{ConfigFile: conf, StoreDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, js := frayt.Connect(t, srv.ClientURL())
	if err := broker.Provision(ctx, js, nc.ConnectedServerVersion(), broker.ProvisionOptions{}); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, broker.BucketCancels)
	if err != nil {
		t.Fatal(err)
	}
	var held []jetstream.KeyWatcher
	for range 2 {
		w, err := kv.WatchAll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, w)
	}
	if _, err := kv.WatchAll(ctx); err == nil {
		t.Fatal("a third consumer on the cancellations was allowed: the limit is not in force")
	}

	logs := &frayt.SyncBuffer{}
	w, _ := startWorker(t, srv.ClientURL(), worker.Options{ID: "limited", Concurrency: 1,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	frayt.Eventually(t, 30*time.Second, "the worker logs the limit it hit", func() bool {
		return strings.Contains(logs.String(), "default_max_consumers")
	})
	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "default_max_consumers") {
			line = l
			break
		}
	}
	for _, want := range []string{"consumer limit", "retrying", "maximum consumers limit reached"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %q", line, want)
		}
	}
	if w.Serving() {
		t.Fatal("the worker serves although it could not read the cancellations")
	}
	if !w.Registered() {
		t.Error("the worker did not register: registering needs no consumer")
	}

	// One consumer freed: the worker's next try gets it and it serves.
	if err := held[0].Stop(); err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 30*time.Second, "the worker serving once a consumer is free", w.Serving)
	p := producer(t, srv.ClientURL())
	var out string
	if err := p.Submit(ctx, "fray.echo", "after the limit").Get(ctx, &out); err != nil || out != "after the limit" {
		t.Fatalf("task after the limit freed: %q, %v", out, err)
	}
	_ = held[1].Stop()
	t.Logf("logged: %s", line)
}
