package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestThreeNodeClusterKeepsDataWhenANodeDies(t *testing.T) {
	ctx := frayt.Context(t, 90*time.Second)
	nodes, url := frayt.Cluster(t, 3)
	frayt.ProvisionCluster(t, url)
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx, broker.StreamTasks)
	if err != nil || s.CachedInfo().Config.Replicas != 3 {
		t.Fatalf("tasks stream: %v, replicas %d", err, s.CachedInfo().Config.Replicas)
	}
	for i := range 100 {
		if _, err := js.Publish(ctx, "fray.tasks.default", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// Kill the node the client is on; the data is on the other two. Pick it
	// before shutting it down: the client reconnects at once, and comparing
	// against its new server would kill a second node and lose the quorum.
	var victim *broker.Server
	for _, n := range nodes {
		if n.ClientURL() == nc.ConnectedUrl() {
			victim = n
		}
	}
	if victim == nil {
		t.Fatalf("client on %s, not on any node", nc.ConnectedUrl())
	}
	victim.Shutdown()
	frayt.Eventually(t, 60*time.Second, "the surviving nodes serve all 100 tasks", func() bool {
		ictx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		s, err := js.Stream(ictx, broker.StreamTasks)
		if err != nil {
			return false
		}
		info, err := s.Info(ictx)
		return err == nil && info.State.Msgs == 100
	})
}

// Every node of a cluster that has just formed provisions at once, as
// three fray-brokers started together do: all succeed, none hangs on a
// create answered only to another node, and a second pass leaves the
// assets alone.
func TestProvisionFromEveryNodeAtOnceSucceedsOnAFormingCluster(t *testing.T) {
	_, urls := frayt.Cluster(t, 3)
	ctx := frayt.Context(t, 60*time.Second)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, u := range strings.Split(urls, ",") {
		nc, js := frayt.Connect(t, u)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = broker.Provision(ctx, js, nc.ConnectedServerVersion(), broker.ProvisionOptions{Replicas: 3})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	nc, js := frayt.Connect(t, urls)
	s, err := js.Stream(ctx, broker.StreamTasks)
	if err != nil {
		t.Fatal(err)
	}
	before := s.CachedInfo().Config.Metadata[broker.MetadataConfigKey]
	var updates atomic.Int32
	sub, err := nc.Subscribe("$JS.API.STREAM.UPDATE.>", func(*nats.Msg) { updates.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	nc.Flush()
	if err := broker.Provision(ctx, js, nc.ConnectedServerVersion(), broker.ProvisionOptions{Replicas: 3}); err != nil {
		t.Fatalf("second pass: %v", err)
	}
	nc.Flush()
	if n := updates.Load(); n != 0 || before == "" {
		t.Fatalf("second pass sent %d stream updates (fingerprint %q); want none", n, before)
	}
}

// A node whose peers are not up waits and says so; it does not give up
// or fail.
func TestProvisionSaysItWaitsForAMetaLeader(t *testing.T) {
	ports := frayt.FreePorts(t, 3)
	srv, err := broker.Start(frayt.Context(t, 30*time.Second), broker.Options{Port: -1, StoreDir: t.TempDir(), ServerName: "alone",
		ClusterName: "c", ClusterPort: ports[0], Routes: []string{fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[2])}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, js := frayt.Connect(t, srv.ClientURL())
	ctx, cancel := context.WithCancel(context.Background())
	said := make(chan string, 16)
	done := make(chan error, 1)
	go func() {
		done <- broker.Provision(ctx, js, nc.ConnectedServerVersion(), broker.ProvisionOptions{Replicas: 3, OnWait: func(what string) {
			select {
			case said <- what:
			default:
			}
		}})
	}()
	select {
	case what := <-said:
		if !strings.Contains(what, "a JetStream meta leader") {
			t.Errorf("waits for %q; want it to name the meta leader", what)
		}
	case err := <-done:
		t.Fatalf("Provision returned %v on a lone node; want it to wait", err)
	case <-time.After(20 * time.Second):
		t.Fatal("no word of what it waits for within 20s")
	}
	if peers, routes := srv.RoutedPeers(); len(peers) != 0 || routes != 2 {
		t.Errorf("routed to %v of %d", peers, routes)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v", err)
	}
}
