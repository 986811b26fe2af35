package broker_test

import (
	"context"
	"fmt"
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
