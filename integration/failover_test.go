package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// failoverNode is a running node of a three-broker cluster.
type failoverNode struct {
	*proc
	name, url string
}

// startCluster runs three fray-broker processes as the README starts them,
// together, and waits until each is ready.
func startCluster(t *testing.T) []failoverNode {
	t.Helper()
	var nodes []failoverNode
	for _, n := range threeNodes(t) {
		nodes = append(nodes, failoverNode{proc: start(t, "fray-broker", nil, n.args...), name: n.name, url: n.url})
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, n := range nodes {
		waitReady(t, n.proc, deadline)
	}
	return nodes
}

// streamLeader is the server leading stream ("" during an election).
func streamLeader(ctx context.Context, js jetstream.JetStream, stream string) string {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return ""
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		return ""
	}
	return info.Cluster.Leader
}

// replicasCurrent reports whether stream has a leader and every replica
// is current, and describes what it found.
func replicasCurrent(ctx context.Context, js jetstream.JetStream, stream string) (bool, string) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return false, fmt.Sprintf("%s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		return false, fmt.Sprintf("%s: %v", stream, err)
	}
	desc := fmt.Sprintf("%s: leader %q", stream, info.Cluster.Leader)
	ok := info.Cluster.Leader != ""
	for _, r := range info.Cluster.Replicas {
		desc += fmt.Sprintf(", %s current=%v offline=%v lag=%d", r.Name, r.Current, r.Offline, r.Lag)
		ok = ok && r.Current && !r.Offline
	}
	return ok, desc
}

// moveLeader asks stream's leader to step down in favour of server.
func moveLeader(t *testing.T, c *fray.Client, stream, server string) {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"placement": map[string]any{"preferred": server}})
	frayt.Eventually(t, 60*time.Second, stream+" led by "+server, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if streamLeader(ctx, c.JetStream(), stream) == server {
			return true
		}
		_, _ = c.NATS().RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, req)
		time.Sleep(500 * time.Millisecond) // let the election settle before looking again
		return streamLeader(ctx, c.JetStream(), stream) == server
	})
}

// Killing the node that leads the worker registry, the actor registry and
// the job state, with the workers and the actor's host connected to it and
// a job running, declares no live worker lost: no worker's registration
// is lost, the job keeps running without a preemption, the actor keeps its
// epoch and answers calls, and no surviving broker logs a lost worker.
func TestKillingTheRegistryLeaderDeclaresNoLiveWorkerLost(t *testing.T) {
	nodes := startCluster(t)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.url)
	}
	c := client(t, strings.Join(urls, ","))
	victim := nodes[0]
	for _, s := range []string{"KV_" + broker.BucketWorkers, "KV_" + broker.BucketActors, "KV_" + broker.BucketJobState} {
		moveLeader(t, c, s, victim.name)
	}
	// The workers (each an actor host and a job runner) know only the
	// victim's URL; they learn the others from it.
	ids := []string{"fw-1", "fw-2"}
	workers := map[string]*proc{}
	for _, id := range ids {
		workers[id] = start(t, "fray-worker", nil, "--nats", victim.url, "--id", id, "--log-level", "warn")
	}
	waitFor(t, 60*time.Second, "both workers registered", func() bool { return len(c.Workers()) == 2 })
	started := map[string]int64{}
	for _, w := range c.Workers() {
		started[w.ID] = w.StartedMS
	}
	ctx := frayt.Context(t, 5*time.Minute)
	h, err := c.Submit(ctx, jobs.JobRequest{Name: "failover-job", Entrypoint: jobs.Command("sleep", "300")})
	if err != nil {
		t.Fatal(err)
	}
	var before *jobs.Record
	waitFor(t, 60*time.Second, "the job running", func() bool {
		r, err := h.Info(ctx)
		before = r
		return err == nil && r.Status == jobs.StatusRunning
	})
	actor, err := c.CreateActor(ctx, actors.ClassCounter, "failover-counter", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := actor.Call(ctx, "Add", 1).Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	arec, err := actor.Record(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"KV_" + broker.BucketWorkers, "KV_" + broker.BucketActors} {
		if l := streamLeader(ctx, c.JetStream(), s); l != victim.name {
			t.Fatalf("%s led by %q before the kill, want %s", s, l, victim.name)
		}
	}

	// Losing one node keeps a stream available only if the other two hold
	// current replicas.
	registries := []string{"KV_" + broker.BucketWorkers, "KV_" + broker.BucketActors, "KV_" + broker.BucketJobState}
	last := map[string]string{}
	waitFor(t, 60*time.Second, "every replica of the registries current", func() bool {
		all := true
		for _, s := range registries {
			ok, desc := replicasCurrent(ctx, c.JetStream(), s)
			last[s], all = desc, all && ok
		}
		return all
	})
	// Look from a survivor, on a connection of its own.
	snc, err := nats.Connect(nodes[1].url, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer snc.Close()
	sjs, err := jetstream.New(snc)
	if err != nil {
		t.Fatal(err)
	}
	victim.Kill()
	killed := time.Now()
	for end := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		elected := true
		for _, s := range registries {
			lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, desc := replicasCurrent(lctx, sjs, s)
			l := streamLeader(lctx, sjs, s)
			cancel()
			last[s] = desc
			if l == "" || l == victim.name {
				elected = false
			}
		}
		if elected {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no new leaders of the registries within 60s of the kill: %v", last)
		}
	}
	t.Logf("new leaders %s after the kill", time.Since(killed).Round(time.Millisecond))
	// The liveness deciders act on an expiry after broker.ExpiryGrace;
	// watch for two lease TTLs (fray-worker's 6 s) beyond that.
	observe := broker.ExpiryGrace + 12*time.Second
	for end := time.Now().Add(observe); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		for id, p := range workers {
			if p.Exited() {
				t.Fatalf("worker %s exited after the kill:\n%s", id, p.Output())
			}
		}
	}
	after, err := h.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Status != jobs.StatusRunning || after.Preemptions != before.Preemptions || after.Attempt != before.Attempt {
		t.Errorf("job after the kill: %s, attempt %d, preemptions %d; before: %s, attempt %d, preemptions %d",
			after.Status, after.Attempt, after.Preemptions, before.Status, before.Attempt, before.Preemptions)
	}
	got := map[string]int64{}
	for _, w := range c.Workers() {
		got[w.ID] = w.StartedMS
	}
	for _, id := range ids {
		if got[id] != started[id] {
			t.Errorf("worker %s after the kill: registered %v (start %d), want the same process (start %d)", id, got[id] != 0, got[id], started[id])
		}
	}
	brec, err := actor.Record(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if brec.Epoch != arec.Epoch || brec.Host != arec.Host || brec.Restarts != arec.Restarts {
		t.Errorf("actor after the kill: epoch %d on %s, %d restarts; before: epoch %d on %s", brec.Epoch, brec.Host, brec.Restarts, arec.Epoch, arec.Host)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var n int
	if err := actor.Call(cctx, "Add", 1).Get(cctx, &n); err != nil || n != 2 {
		t.Errorf("actor call after the kill: %d, %v; want 2 (its state kept)", n, err)
	}
	for _, node := range nodes[1:] {
		if out := node.Output(); strings.Contains(out, "worker lost") {
			t.Errorf("%s declared a live worker lost:\n%s", node.name, out)
		}
	}
}
