package frayt

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
)

// Cluster starts n brokers routed into one cluster, each on its own store,
// shut down when the test ends. It returns them and a client URL listing
// every node. Nothing is provisioned: JetStream needs a meta leader first
// (see ProvisionCluster).
func Cluster(t testing.TB, n int) ([]*broker.Server, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	routePorts := FreePorts(t, n)
	var nodes []*broker.Server
	var urls []string
	for i := range n {
		var routes []string
		for j, p := range routePorts {
			if j != i {
				routes = append(routes, fmt.Sprintf("127.0.0.1:%d", p))
			}
		}
		srv, err := broker.Start(ctx, broker.Options{Port: -1, StoreDir: t.TempDir(), ServerName: fmt.Sprintf("n%d", i),
			ClusterName: "fray-test", ClusterPort: routePorts[i], Routes: routes})
		if err != nil {
			t.Fatalf("start node %d: %v", i, err)
		}
		t.Cleanup(srv.Shutdown)
		nodes = append(nodes, srv)
		urls = append(urls, srv.ClientURL())
	}
	return nodes, strings.Join(urls, ",")
}

// ProvisionCluster provisions fray's layout with 3 replicas on the cluster
// at url; Provision waits for the cluster to form (up to a minute here).
func ProvisionCluster(t testing.TB, url string) {
	t.Helper()
	nc, js := Connect(t, url)
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := broker.Provision(ctx, js, nc.ConnectedServerVersion(), broker.ProvisionOptions{Replicas: 3}); err != nil {
		t.Fatalf("provision a 3-replica layout: %v", err)
	}
}
