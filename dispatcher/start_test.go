package dispatcher_test

import (
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/jobs"
)

// A worker that advertises job capacity but never starts what it is given
// (no job runner) must not hold a job: the assignment is taken back after
// StartTimeout, the job's record says why, and the job runs elsewhere.
func TestAssignmentNotStartedInTimeIsPlacedAgainElsewhere(t *testing.T) {
	// Longer than a real runner may take to see an assignment when it
	// misses the notice (it reads its allocation again every 5 s), so the
	// runner added below is never taken for a silent worker too: that
	// would leave the job nowhere to go.
	c := newCluster(t, dispatcher.Options{StartTimeout: 8 * time.Second})
	c.addSilentWorker("silent", 4)
	h := c.submit(sh("rollout", "echo done"))
	frayt.Eventually(t, 10*time.Second, "assigned to the silent worker", func() bool {
		r := c.info(h)
		return r.Status == jobs.StatusRunning && r.Tasks[0].Worker == "silent"
	})
	frayt.Eventually(t, 20*time.Second, "taken back with a reason", func() bool {
		r := c.info(h)
		return r.Status == jobs.StatusPending && strings.Contains(r.PendingReason, "not placed on silent: left an assignment unstarted")
	})
	c.addWorker("runner", 1, nil)
	r := c.wait(h)
	if r.Status != jobs.StatusSucceeded || r.Tasks[0].Worker != "runner" || r.Preemptions != 0 {
		t.Fatalf("status %s worker %s preemptions %d: %s", r.Status, r.Tasks[0].Worker, r.Preemptions, r.Error)
	}
	first := r.Tasks[0].Attempts[0]
	if first.Worker != "silent" || first.State != jobs.TaskStopped || !strings.Contains(first.Error, "not started") {
		t.Fatalf("first attempt %+v", first)
	}
}
