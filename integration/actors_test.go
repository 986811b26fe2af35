package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go/jetstream"
)

// actorsLeaseTTL is the actor lease the workers of these tests use
// (FRAY_ACTOR_LEASE_TTL), so a killed host's actors restart quickly.
const actorsLeaseTTL = 2 * time.Second

// actorsCluster starts fray-broker (with its actor supervisor) and returns
// its URL.
func actorsCluster(t *testing.T) string {
	t.Helper()
	return startBroker(t, "", 0).URL
}

// actorsWorker starts fray-worker with id and attributes and waits until it
// is registered offering the built-in actor classes.
func actorsWorker(t *testing.T, url, id string, attrs ...string) *proc {
	t.Helper()
	args := []string{"--nats", url, "--id", id, "--lease-ttl", "2s", "--concurrency", "1"}
	for _, a := range attrs {
		args = append(args, "--attr", a)
	}
	p := start(t, "fray-worker", []string{actors.EnvLeaseTTL + "=" + actorsLeaseTTL.String()}, append(args, "--log-level", "warn")...)
	_, js := frayt.Connect(t, url)
	frayt.Eventually(t, 20*time.Second, "worker "+id+" registered with actor classes", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		kv, err := js.KeyValue(ctx, broker.BucketWorkers)
		if err != nil {
			return false
		}
		e, err := kv.Get(ctx, id)
		if err != nil {
			return false
		}
		var wi broker.WorkerInfo
		return objects.Unmarshal(e.Value(), &wi) == nil && slices.Contains(wi.ActorClasses, actors.ClassCounter)
	})
	return p
}

func actorsClient(t *testing.T, url string) (*actors.Client, jetstream.JetStream) {
	t.Helper()
	nc, js := frayt.Connect(t, url)
	c, err := actors.NewClient(frayt.Context(t, 10*time.Second), nc, js, actors.ClientOptions{PlacementTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, js
}

func TestActorServesAgainFromAnotherWorkerAfterItsWorkerIsKilled(t *testing.T) {
	url := actorsCluster(t)
	wa := actorsWorker(t, url, "worker-a")
	c, _ := actorsClient(t, url)
	ctx := frayt.Context(t, 90*time.Second)
	h, err := c.CreateActor(ctx, actors.ClassCounter, "survivor", 0, actors.MaxRestarts(1))
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := h.Record(ctx); err != nil || rec.Host != "worker-a" {
		t.Fatalf("placed on %+v, %v; want worker-a", rec, err)
	}
	actorsWorker(t, url, "worker-b")

	var ok, unavailable atomic.Int64
	stop := make(chan struct{})
	loopErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				loopErr <- nil
				return
			default:
			}
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			err := h.Call(cctx, "Add", 1).Get(cctx, nil)
			cancel()
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, actors.ErrActorUnavailable):
				unavailable.Add(1)
			default:
				loopErr <- err // anything else, a timeout included, fails the test
				return
			}
		}
	}()
	frayt.Eventually(t, 10*time.Second, "calls succeeding", func() bool { return ok.Load() >= 100 })
	killed := time.Now()
	wa.Kill()
	frayt.Eventually(t, actorsLeaseTTL+broker.ExpiryGrace+5*time.Second, "actor ready on worker-b with epoch 2", func() bool {
		rec, err := h.Record(ctx)
		return err == nil && rec.State == actors.StateReady && rec.Host == "worker-b" && rec.Epoch == 2
	})
	t.Logf("serving from worker-b %s after SIGKILL of worker-a", time.Since(killed).Round(time.Millisecond))
	before := ok.Load()
	frayt.Eventually(t, 5*time.Second, "calls succeed again", func() bool { return ok.Load() >= before+100 })
	close(stop)
	if err := <-loopErr; err != nil {
		t.Fatalf("caller saw %v; want only successes or ErrActorUnavailable", err)
	}
	t.Logf("calls: %d succeeded, %d ErrActorUnavailable", ok.Load(), unavailable.Load())
}

func TestNonPreemptibleActorsLandOnTheNonPreemptibleWorkerProcess(t *testing.T) {
	url := actorsCluster(t)
	actorsWorker(t, url, "spot", "preemptible=true")
	actorsWorker(t, url, "steady", "preemptible=false")
	c, _ := actorsClient(t, url)
	ctx := frayt.Context(t, 60*time.Second)
	for i := range 4 {
		h, err := c.CreateActor(ctx, actors.ClassEcho, fmt.Sprintf("curriculum-%d", i), nil, actors.NonPreemptible(), actors.GetIfExists())
		if err != nil {
			t.Fatal(err)
		}
		var where string
		if err := h.Call(ctx, "Where", nil).Get(ctx, &where); err != nil || where != "steady" {
			t.Fatalf("actor %d on %q (%v), want steady", i, where, err)
		}
	}
	// `fray actors` lists them with their host.
	out, stderr, code := runFray(t, nil, 30*time.Second, "actors", "--nats", url)
	if code != 0 {
		t.Fatalf("fray actors: exit %d\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[1], "default/curriculum-0") ||
		!strings.Contains(lines[1], "steady") || !strings.Contains(lines[1], "ready") {
		t.Fatalf("fray actors printed:\n%s", out)
	}
	out, stderr, code = runFray(t, nil, 30*time.Second, "actors", "--nats", url, "--json", "--namespace", "default")
	var recs []actors.Record
	if code != 0 || json.Unmarshal([]byte(out), &recs) != nil || len(recs) != 4 || recs[0].Host != "steady" {
		t.Fatalf("fray actors --json: exit %d\n%s%s", code, out, stderr)
	}
	t.Logf("fray actors:\n%s", lines[0]+"\n"+lines[1])
}
