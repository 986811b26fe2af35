package tasks_test

import (
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/tasks"
)

// On a cluster, a FRAY_RESULTS leader that steps down between storing a
// result and republishing it leaves the result unannounced. The producer
// looks up its waiting futures when the stream elects a leader, instead of
// leaving them to the safety net (whose looks come 5, 10, 20 and 40 s after
// submission by default; stretched here past the test's end, so only the
// election can find the result).
func TestAResultStoredButNotAnnouncedIsFoundAfterALeaderElection(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	_, url := frayt.Cluster(t, 3)
	frayt.ProvisionCluster(t, url)
	ctx := frayt.Context(t, 90*time.Second)
	nc, js := frayt.Connect(t, url)
	var o tasks.ProducerOptions
	tasks.SetSweepTiming(&o, 0, time.Hour, time.Hour)
	p, err := tasks.NewProducer(ctx, nc, o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	fut := p.Submit(ctx, "nobody-serves-this", 1)
	if err := fut.Queued(ctx); err != nil {
		t.Fatal(err)
	}
	submitted := time.Now()
	owner, id, _ := taskwire.ParseFutureID(fut.ID())

	// The fault: a result stored without being republished.
	rs, err := js.Stream(ctx, broker.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	cfg := rs.CachedInfo().Config
	republish := cfg.RePublish
	cfg.RePublish = nil
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	val, _ := objects.Marshal("stored quietly")
	data, _ := objects.Marshal(&tasks.Result{V: taskwire.ResultVersion, ID: id, Value: val, Worker: "forger"})
	if _, err := js.Publish(ctx, taskwire.ResultSubject(owner, id), data); err != nil {
		t.Fatal(err)
	}
	cfg.RePublish = republish
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fut.Done():
		t.Fatal("the future resolved though its result was never announced")
	default:
	}

	if _, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+broker.StreamResults, nil); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := fut.Get(ctx, &got); err != nil || got != "stored quietly" {
		t.Fatalf("got %q, %v", got, err)
	}
	t.Logf("resolved %s after submission", time.Since(submitted).Round(time.Millisecond))
}
