package dispatcher_test

import (
	"testing"
	"time"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
)

// publishEvent sends ev on subj as if a worker did.
func (c *cluster) publishEvent(subj string, ev jobwire.TaskEvent) {
	c.t.Helper()
	ev.V, ev.TimeMS = jobwire.WireVersion, jobwire.NowMS()
	b, err := objects.Marshal(&ev)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.js.Publish(c.ctx, subj, b); err != nil {
		c.t.Fatal(err)
	}
}

// Only the worker a task is placed on reports on it: an event sent by
// another worker, or whose subject names another sender than its body,
// changes nothing.
func TestTaskEventsFromAnotherWorkerThanTheTasksAreDropped(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 1, nil)
	h := c.submit(sh("placed-on-w1", "exec sleep 600"))
	frayt.Eventually(t, 20*time.Second, "the job running on w1", func() bool { return c.info(h).Running() == 1 })
	r := c.info(h)
	if r.Tasks[0].Worker != "w1" {
		t.Fatalf("placed on %q", r.Tasks[0].Worker)
	}
	exited := jobwire.TaskEvent{Job: r.ID, Run: r.Run, Task: 0, Attempt: r.Attempt, Kind: jobwire.EventExited}
	// w2 says, on its own subject, that it ran the task and it succeeded.
	forged := exited
	forged.Worker = "w2"
	c.publishEvent(jobwire.EventSubject("w2", r.ID), forged)
	// w2 says, on its own subject, that w1 saw it succeed.
	forged.Worker = "w1"
	c.publishEvent(jobwire.EventSubject("w2", r.ID), forged)
	// The stop is consumed after both: had either counted, the job would
	// have SUCCEEDED before it.
	if err := h.Terminate(c.ctx); err != nil {
		t.Fatal(err)
	}
	if r = c.wait(h); r.Status != jobs.StatusStopped {
		t.Fatalf("job %s (%s); want STOPPED: the forged exits must not count", r.Status, r.Error)
	}

	// A worker of subject layout 1 (no worker token) is still heard.
	h = c.submit(sh("old-worker", "exec sleep 600"))
	frayt.Eventually(t, 20*time.Second, "the second job running on w1", func() bool { return c.info(h).Running() == 1 })
	r = c.info(h)
	legacy := jobwire.TaskEvent{Job: r.ID, Run: r.Run, Task: 0, Attempt: r.Attempt, Kind: jobwire.EventExited, Worker: "w1"}
	c.publishEvent(jobwire.SubjectEventsPrefix+jobwire.Token(r.ID), legacy)
	if r = c.wait(h); r.Status != jobs.StatusSucceeded {
		t.Fatalf("job %s (%s); want SUCCEEDED on a layout-1 event of its worker", r.Status, r.Error)
	}
}
