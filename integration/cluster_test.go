package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// clusterNode is how to start one node of a three-broker cluster the way
// the README does (--server-name, --cluster-name, --routes, --replicas 3).
type clusterNode struct {
	name string
	url  string
	args []string
}

func threeNodes(t *testing.T) []clusterNode {
	t.Helper()
	ports := frayt.FreePorts(t, 6) // 3 client, 3 route
	var nodes []clusterNode
	for i := range 3 {
		var routes []string
		for j := range 3 {
			if j != i {
				routes = append(routes, fmt.Sprintf("127.0.0.1:%d", ports[3+j]))
			}
		}
		name := fmt.Sprintf("b%d", i+1)
		nodes = append(nodes, clusterNode{name: name, url: fmt.Sprintf("nats://127.0.0.1:%d", ports[i]), args: []string{
			"--store", filepath.Join(t.TempDir(), name), "--port", fmt.Sprint(ports[i]), "--log-level", "info",
			"--server-name", name, "--cluster-name", "fray", "--cluster-port", fmt.Sprint(ports[3+i]),
			"--routes", strings.Join(routes, ","), "--replicas", "3"}})
	}
	return nodes
}

// waitReady waits until p prints its ready line, at most until deadline.
func waitReady(t *testing.T, p *proc, deadline time.Time) {
	t.Helper()
	p.waitLine("fray-broker ready", time.Until(deadline))
}

// assertReplicatedLayout checks, through node url, that every stream is on
// three replicas with a leader.
func assertReplicatedLayout(t *testing.T, url string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, name := range []string{broker.StreamTasks, broker.StreamResults, broker.StreamJobs, broker.StreamLogs,
		"KV_" + broker.BucketWorkers, "KV_" + broker.BucketActors, "KV_" + broker.BucketJobState, "KV_" + broker.BucketCancels, "OBJ_" + broker.BucketObjects} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		info := s.CachedInfo()
		if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			t.Fatalf("stream %s: replicas %d, cluster %+v; want 3 replicas with a leader", name, info.Config.Replicas, info.Cluster)
		}
	}
}

func TestThreeBrokersStartedTogetherAreAllReadyWithinFifteenSeconds(t *testing.T) {
	nodes := threeNodes(t)
	var procs []*proc
	for _, n := range nodes {
		procs = append(procs, start(t, "fray-broker", nil, n.args...))
	}
	lastStart := time.Now()
	deadline := lastStart.Add(15 * time.Second)
	for _, p := range procs {
		waitReady(t, p, deadline)
	}
	t.Logf("all three ready %s after the last start", time.Since(lastStart).Round(time.Millisecond))
	assertReplicatedLayout(t, nodes[0].url)
	// They serve: a task submitted through one node runs on a worker of
	// another and its result is read back through the third.
	c := client(t, nodes[0].url)
	startWorker(t, c, "w-cluster", "--exec", "echo=/bin/cat")
	out, errOut, code := runFray(t, []string{"FRAY_CLUSTER_SPEC=" + nodes[2].url}, time.Minute, "run", "echo", "--arg", `{"x":1}`, "--wait")
	if code != 0 || strings.TrimSpace(out) != `{"x":1}` {
		t.Fatalf("task through the cluster: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for i, p := range procs {
		if p.Exited() {
			t.Fatalf("broker %s exited: %v", nodes[i].name, p.err)
		}
	}
}

// A node started alone waits for the others, saying what it waits for and
// which routes are up, and becomes ready once they come.
func TestABrokerStartedAloneWaitsForItsPeersAndSaysSo(t *testing.T) {
	nodes := threeNodes(t)
	first := start(t, "fray-broker", nil, nodes[0].args...)
	waitFor(t, 20*time.Second, "the lone node says it waits for a meta leader", func() bool {
		return strings.Contains(first.Output(), `msg="fray-broker waiting" for="a JetStream meta leader`) &&
			strings.Contains(first.Output(), `routed_nodes="0 of 2"`)
	})
	second := start(t, "fray-broker", nil, nodes[1].args...)
	waitFor(t, 30*time.Second, "two nodes say they wait for a third for the replicas", func() bool {
		return strings.Contains(first.Output(), "its 3 replicas need 3 JetStream nodes up") ||
			strings.Contains(second.Output(), "its 3 replicas need 3 JetStream nodes up")
	})
	if first.Exited() || second.Exited() {
		t.Fatalf("a waiting node exited: first %v, second %v", first.err, second.err)
	}
	third := start(t, "fray-broker", nil, nodes[2].args...)
	deadline := time.Now().Add(20 * time.Second)
	for _, p := range []*proc{first, second, third} {
		waitReady(t, p, deadline)
	}
	assertReplicatedLayout(t, nodes[2].url)
}

// A single server asked through --nats for 3 replicas fails at once
// instead of waiting for peers that cannot come.
func TestReplicasThreeOnASingleServerFailsAtOnce(t *testing.T) {
	b := startBroker(t, "", 0)
	p := start(t, "fray-broker", nil, "--nats", b.URL, "--replicas", "3", "--no-dispatcher", "--no-supervisor", "--log-level", "warn")
	if code := exitWithin(t, p, 20*time.Second); code != 1 || !strings.Contains(p.Output(), "--replicas 3 needs a clustered NATS") {
		t.Fatalf("exit %d, output:\n%s", code, p.Output())
	}
}
