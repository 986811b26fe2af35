package dispatcher_test

import (
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
)

// gangOnOneSlice is a gang of n replicas that must share a tpu-name.
func gangOnOneSlice(name string, n int) jobs.JobRequest {
	req := sh(name, "exec sleep 600")
	req.Replicas = n
	req.Coscheduling = &jobs.Coscheduling{GroupBy: "tpu-name"}
	return req
}

func TestSchedulingTimeoutFailsAGangThatNeverFitsWhileZeroWaitsOn(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("a0", 2, map[string]string{"tpu-name": "a"})
	// Both need two workers of one slice; slice a has one. Without a
	// scheduling timeout such a gang waits (more of the slice may register).
	patient := c.submit(gangOnOneSlice("patient", 2))
	req := gangOnOneSlice("impatient", 2)
	req.SchedulingTimeout = time.Second
	impatient := c.submit(req)

	r := c.wait(impatient)
	if r.Status != jobs.StatusFailed || !strings.Contains(r.Error, "unschedulable for 1s (its scheduling timeout); last pending reason: waiting for 2 workers sharing one tpu-name value") {
		t.Fatalf("status %s, error %q; want FAILED as unschedulable with the pending reason", r.Status, r.Error)
	}
	if waited := r.FinishedMS - r.SubmittedMS; waited < 1000 {
		t.Fatalf("failed %d ms after submission, before its 1s scheduling timeout", waited)
	}
	for _, tk := range r.Tasks {
		if len(tk.Attempts) != 0 {
			t.Fatalf("task %d of a never placed job has attempts %+v", tk.Index, tk.Attempts)
		}
	}
	// The same gang without a timeout, waiting as long, still waits.
	if p := c.info(patient); p.Status != jobs.StatusPending || !strings.Contains(p.PendingReason, "tpu-name") {
		t.Fatalf("the job without a scheduling timeout is %s (%q %q), want PENDING with its reason", p.Status, p.PendingReason, p.Error)
	}
	if err := patient.Terminate(c.ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSchedulingTimeoutCountsAfreshWhileAPreemptedJobWaitsToBePlacedAgain(t *testing.T) {
	c := newCluster(t, dispatcher.Options{ExpiryGrace: lossGrace})
	w1 := c.addWorker("w1", 1, nil)
	req := sh("preempted", "exec sleep 600")
	req.SchedulingTimeout = time.Second
	h := c.submit(req)
	// It runs for longer than its scheduling timeout: running time does
	// not count, nor does the wait before its first placement once placed.
	frayt.Eventually(t, 10*time.Second, "running for more than 1.5s", func() bool {
		r := c.info(h)
		return r.Running() == 1 && jobwire.NowMS()-r.SubmittedMS > 1500
	})
	w1.loseLease() // no worker is left to run it again
	r := c.wait(h)
	if r.Status != jobs.StatusFailed || r.Preemptions != 1 || r.Attempt != 1 ||
		!strings.Contains(r.Error, "unschedulable for 1s (its scheduling timeout); last pending reason: no live workers") {
		t.Fatalf("status %s, preemptions %d, attempt %d, error %q; want FAILED as unschedulable after one preemption", r.Status, r.Preemptions, r.Attempt, r.Error)
	}
	restartedMS := r.Tasks[0].Attempts[0].EndMS // the preemption stopped the first attempt
	if waited := r.FinishedMS - restartedMS; waited < 1000 {
		t.Fatalf("failed %d ms after the preemption, before its 1s scheduling timeout", waited)
	}
}

func TestGPUJobWithoutGPUWorkersSaysWhatItNeedsAndWhatTheWorkersHave(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 2, nil)
	req := sh("needs-h100", "true")
	if err := req.WithGPU("H100", 1); err != nil {
		t.Fatal(err)
	}
	r := c.wait(c.submit(req))
	want := "cannot be scheduled: no live worker can run it (each replica needs gpu H100:1, cpu=1): 1 of 1 workers: has no gpu (no accelerators)"
	if r.Status != jobs.StatusFailed || r.Error != want {
		t.Fatalf("status %s, error %q\nwant FAILED, %q", r.Status, r.Error, want)
	}
}
