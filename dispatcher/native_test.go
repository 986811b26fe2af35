package dispatcher_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go/jetstream"
)

func TestNativeJobSucceedsWithItsOutputInTheLogs(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 2, nil)
	req := sh("hello", `echo hello; echo "task=$FRAY_TASK_INDEX/$FRAY_NUM_TASKS id=$FRAY_JOB_ID ns=$FRAY_NAMESPACE k=$K"; echo oops >&2`)
	req.Environment.EnvVars = map[string]string{"K": "v"}
	h := c.submit(req)
	if h.ID() != "/test/hello" {
		t.Fatalf("id %q", h.ID())
	}
	r := c.wait(h)
	if r.Status != jobs.StatusSucceeded {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	lines, err := h.Logs(c.ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range lines {
		got = append(got, l.Text)
	}
	want := []string{"hello", "task=0/1 id=/test/hello ns=test k=v", "oops"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("logs %q, want %q", got, want)
	}
	if a := r.Tasks[0].Current(); a == nil || a.Worker != "w1" || a.ExitCode != 0 || a.StartMS == 0 || a.EndMS == 0 {
		t.Fatalf("task attempt %+v", a)
	}
}

func TestFailingCommandEndsFailedWithItsExitCode(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 2, nil)
	r := c.wait(c.submit(sh("bad", "exit 3")))
	if r.Status != jobs.StatusFailed || !strings.Contains(r.Error, "code 3") {
		t.Fatalf("status %s error %q", r.Status, r.Error)
	}
	_, err := c.jc.Handle(r.ID).Wait(c.ctx, jobs.WaitOptions{RaiseOnFailure: true})
	var fe *jobs.FailedError
	if !errorsAs(err, &fe) || fe.Status != jobs.StatusFailed {
		t.Fatalf("Wait(RaiseOnFailure) = %v", err)
	}
}

func TestFailureRetriesWithinMaxRetriesFailure(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 2, nil)
	// Fails on attempt 0 and 1, succeeds on attempt 2.
	req := sh("flaky", `[ "$FRAY_JOB_ATTEMPT" -ge 2 ]`)
	req.MaxRetriesFailure = 2
	r := c.wait(c.submit(req))
	if r.Status != jobs.StatusSucceeded || r.Failures != 2 || r.Attempt != 2 {
		t.Fatalf("status %s failures %d attempt %d: %s", r.Status, r.Failures, r.Attempt, r.Error)
	}
}

func TestStopKillsTheWholeProcessGroup(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 2, nil)
	pidFile := t.TempDir() + "/pids"
	h := c.submit(sh("sleeper", `sleep 600 & echo $! > `+pidFile+`; echo $$ >> `+pidFile+`; wait`))
	var pids []int
	frayt.Eventually(t, 10*time.Second, "job running with pids written", func() bool {
		pids = readPids(pidFile)
		return len(pids) == 2 && c.info(h).Running() == 1
	})
	start := time.Now()
	if err := h.Terminate(c.ctx); err != nil {
		t.Fatal(err)
	}
	if r := c.info(h); r.Status != jobs.StatusStopped {
		t.Fatalf("status %s", r.Status)
	}
	frayt.Eventually(t, 5*time.Second, "processes gone", func() bool { return !anyAlive(pids) })
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stop took %s", d)
	}
	// The attempt says how the stop ended it.
	var a *jobs.TaskAttempt
	frayt.Eventually(t, 10*time.Second, "attempt exited", func() bool {
		a = c.info(h).Tasks[0].Current()
		return a != nil && a.Exited
	})
	if a.Error != "stopped (killed by SIGTERM)" {
		t.Fatalf("attempt error %q, want it to say the stop's SIGTERM killed it", a.Error)
	}
}

func TestTimeoutStopsTheJob(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 2, nil)
	req := sh("slow", "sleep 600")
	req.Timeout = 500 * time.Millisecond
	r := c.wait(c.submit(req))
	if r.Status != jobs.StatusStopped || !strings.Contains(r.Error, "timed out") {
		t.Fatalf("status %s error %q", r.Status, r.Error)
	}
}

func TestLostWorkerRerunsTheJobElsewhere(t *testing.T) {
	c := newCluster(t, dispatcher.Options{ExpiryGrace: lossGrace})
	w1 := c.addWorker("w1", 1, nil)
	h := c.submit(sh("survivor", `[ "$FRAY_JOB_ATTEMPT" -ge 1 ] || sleep 600`))
	frayt.Eventually(t, 10*time.Second, "running on w1", func() bool { return c.info(h).Running() == 1 })
	c.addWorker("w2", 1, nil)
	w1.loseLease()
	r := c.wait(h)
	if r.Status != jobs.StatusSucceeded || r.Preemptions != 1 || r.Tasks[0].Worker != "w2" {
		t.Fatalf("status %s preemptions %d worker %s: %s", r.Status, r.Preemptions, r.Tasks[0].Worker, r.Error)
	}
	// The attempt on the lost worker says why it stopped, naming the worker.
	if a := r.Tasks[0].Attempts[0]; a.State != jobs.TaskStopped || a.Worker != "w1" || !strings.HasPrefix(a.Error, "worker lost (lease expired): w1") {
		t.Fatalf("first attempt %+v; want it stopped with error naming the lost worker w1", a)
	}
}

func TestLostWorkerWithoutPreemptionBudgetFailsNamingTheWorker(t *testing.T) {
	c := newCluster(t, dispatcher.Options{ExpiryGrace: lossGrace})
	w1 := c.addWorker("w1", 1, nil)
	h, err := c.jc.Submit(c.ctx, sh("fragile", "sleep 600"), jobs.MaxPreemptions(0))
	if err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 10*time.Second, "running", func() bool {
		st, err := h.Status(c.ctx)
		return err == nil && st.Status == jobs.StatusRunning && st.Running == 1 && st.Replicas == 1
	})
	w1.loseLease()
	r := c.wait(h)
	// State, reruns and why it ended: one call.
	st, err := h.Status(c.ctx)
	if err != nil || st.Status != jobs.StatusFailed || st.Preemptions != 1 || st.Failures != 0 || !strings.Contains(st.Why, "worker lost (lease expired): w1") {
		t.Fatalf("status %+v, %v", st, err)
	}
	if a := r.Tasks[0].Current(); !strings.HasPrefix(a.Error, "worker lost (lease expired): w1") {
		t.Fatalf("attempt %+v; want its error to name the lost worker", a)
	}
}

func TestRequestOptionsAreCheckedAtSubmit(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	if _, err := c.jc.Submit(c.ctx, sh("tpu", "true"), jobs.TPU("v5e-17", 1)); !errors.Is(err, jobs.ErrInvalid) || !strings.Contains(err.Error(), "v5e-16") {
		t.Fatalf("unknown TPU type: %v", err)
	}
	if _, err := c.jc.Submit(c.ctx, sh("neg", "true"), jobs.MaxPreemptions(-1)); !errors.Is(err, jobs.ErrInvalid) {
		t.Fatalf("negative MaxPreemptions: %v", err)
	}
	c.addWorker("w1", 1, map[string]string{"preemptible": "false"})
	h, err := c.jc.Submit(c.ctx, sh("once", "sleep 600"), jobs.NotPreemptible(), jobs.RefuseExisting())
	if err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 10*time.Second, "running on the non-preemptible worker", func() bool { return c.info(h).Running() == 1 })
	var exists *jobs.AlreadyExistsError
	if _, err := c.jc.Submit(c.ctx, sh("once", "true"), jobs.RefuseExisting()); !errorsAs(err, &exists) || exists.Handle.ID() != h.ID() {
		t.Fatalf("second submit of a live name with RefuseExisting: %v", err)
	}
	if err := h.Terminate(c.ctx); err != nil {
		t.Fatal(err)
	}
}

func TestGangLandsOnOneSliceOrWaitsWithAReason(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	for i := range 4 {
		c.addWorker("a"+string(rune('0'+i)), 1, map[string]string{"tpu-name": "a"})
	}
	for i := range 2 {
		c.addWorker("b"+string(rune('0'+i)), 1, map[string]string{"tpu-name": "b"})
	}
	req := sh("gang4", "sleep 600")
	req.Replicas = 4
	req.Coscheduling = &jobs.Coscheduling{GroupBy: "tpu-name"}
	h4 := c.submit(req)
	frayt.Eventually(t, 10*time.Second, "4 replicas running", func() bool { return c.info(h4).Running() == 4 })
	for _, tk := range c.info(h4).Tasks {
		if tk.Worker[0] != 'a' {
			t.Fatalf("replica %d on %s, want slice a", tk.Index, tk.Worker)
		}
	}
	req.Name, req.Replicas = "gang8", 8
	h8 := c.submit(req)
	frayt.Eventually(t, 10*time.Second, "pending with reason", func() bool {
		r := c.info(h8)
		return r.Status == jobs.StatusPending && strings.Contains(r.PendingReason, "tpu-name")
	})
	t.Logf("reason: %s", c.info(h8).PendingReason)
	if err := h4.Terminate(c.ctx); err != nil {
		t.Fatal(err)
	}
	if err := h8.Terminate(c.ctx); err != nil {
		t.Fatal(err)
	}
}

func TestJobNoWorkerCanRunFailsWithAReason(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 2, nil)
	req := sh("tpu", "true")
	if err := req.WithTPU("v5e-16", 1); err != nil {
		t.Fatal(err)
	}
	r := c.wait(c.submit(req))
	if r.Status != jobs.StatusFailed || !strings.Contains(r.Error, "has no tpu") {
		t.Fatalf("status %s error %q", r.Status, r.Error)
	}
}

func TestChildJobIsListedUnderItsParentAndStoppedWithIt(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 4, nil)
	parent := c.submit(sh("parent", "sleep 600"))
	frayt.Eventually(t, 10*time.Second, "parent running", func() bool { return c.info(parent).Running() == 1 })
	// What a process inside the parent does: a client whose parent is
	// $FRAY_JOB_ID.
	cc, err := jobs.NewClient(c.ctx, c.nc, c.js, jobs.ClientOptions{Parent: parent.ID()})
	if err != nil {
		t.Fatal(err)
	}
	child, err := cc.Submit(c.ctx, sh("child", "sleep 600"))
	if err != nil {
		t.Fatal(err)
	}
	if child.ID() != "/test/parent/child" {
		t.Fatalf("child id %s", child.ID())
	}
	kids, err := c.jc.ListJobs(c.ctx, jobs.Filter{Parent: parent.ID()})
	if err != nil || len(kids) != 1 || kids[0].ID != child.ID() {
		t.Fatalf("children %v %v", kids, err)
	}
	frayt.Eventually(t, 10*time.Second, "child running", func() bool { return c.info(child).Running() == 1 })
	if err := parent.Terminate(c.ctx); err != nil {
		t.Fatal(err)
	}
	r := c.wait(child)
	if r.Status != jobs.StatusStopped || !strings.Contains(r.Error, "parent") {
		t.Fatalf("child %s: %s", r.Status, r.Error)
	}
}

func TestSubmittingALiveNameAdoptsOrRefuses(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 4, nil)
	h := c.submit(sh("dup", "sleep 600"))
	again := c.submit(sh("dup", "true"))
	if again.ID() != h.ID() {
		t.Fatal("adopt returned another job")
	}
	req := sh("dup", "true")
	req.AdoptExisting = jobwire.Ptr(false)
	_, err := c.jc.Submit(c.ctx, req)
	var ae *jobs.AlreadyExistsError
	if !errorsAs(err, &ae) || ae.Handle == nil || ae.Handle.ID() != h.ID() {
		t.Fatalf("err %v", err)
	}
	if err := h.Terminate(c.ctx); err != nil {
		t.Fatal(err)
	}
}

func TestJobsSurviveADispatcherRestart(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 2, nil)
	gate := t.TempDir() + "/go"
	running := c.submit(sh("across", `while [ ! -e `+gate+` ]; do sleep 0.05; done; echo done`))
	frayt.Eventually(t, 10*time.Second, "running", func() bool { return c.info(running).Running() == 1 })
	c.stopDispatcher()
	// With no dispatcher, a submit is recorded PENDING and waits.
	queued := c.submit(sh("queued", "echo queued"))
	if r := c.info(queued); r.Status != jobs.StatusPending {
		t.Fatalf("queued is %s", r.Status)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c.startDispatcher(c.opts)
	for _, h := range []*jobs.Handle{running, queued} {
		if r := c.wait(h); r.Status != jobs.StatusSucceeded {
			t.Fatalf("%s: %s %s", h.ID(), r.Status, r.Error)
		}
	}
}

func TestDrainedWorkerCountsAsPreemptionAndTheJobRerunsElsewhere(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	w1 := c.addWorker("w1", 1, nil)
	req := sh("drained", `[ "$FRAY_JOB_ATTEMPT" -ge 1 ] || exec sleep 600`)
	req.MaxRetriesFailure = 0
	h := c.submit(req)
	frayt.Eventually(t, 10*time.Second, "running on w1", func() bool { return c.info(h).Running() == 1 })
	c.addWorker("w2", 1, nil)
	w1.stopRunner() // the worker drains: its runner stops its replicas as preempted
	r := c.wait(h)
	if r.Status != jobs.StatusSucceeded || r.Preemptions != 1 || r.Failures != 0 || r.Tasks[0].Worker != "w2" {
		t.Fatalf("status %s preemptions %d failures %d on %s: %s", r.Status, r.Preemptions, r.Failures, r.Tasks[0].Worker, r.Error)
	}
}

func TestGangRestartsAllReplicasAfterOneFails(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 4, nil)
	// Replica 1 fails on the first attempt; replica 0 would sleep forever
	// unless the gang restarts it.
	req := sh("gang", `if [ "$FRAY_JOB_ATTEMPT" -ge 1 ]; then exit 0; fi; if [ "$FRAY_TASK_INDEX" = 1 ]; then exit 1; fi; exec sleep 600`)
	req.Replicas = 2
	req.MaxRetriesFailure = 1
	r := c.wait(c.submit(req))
	if r.Status != jobs.StatusSucceeded || r.Attempt != 1 || r.Failures != 1 {
		t.Fatalf("status %s attempt %d failures %d: %s", r.Status, r.Attempt, r.Failures, r.Error)
	}
	if a := r.Tasks[0].Attempts[0]; a.State != jobs.TaskStopped {
		t.Fatalf("replica 0's first attempt %+v, want STOPPED by the gang restart", a)
	}
}

func TestTwoDispatchersNeverDoubleBookAWorker(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.startDispatcher(c.opts) // a second one on the same cluster
	c.addWorker("w1", 1, nil)
	kv, err := c.js.KeyValue(c.ctx, "FRAY_JOB_STATE")
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.Watch(c.ctx, jobwire.AllocKey("w1"), jetstream.IncludeHistory())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	overbooked := make(chan int, 1)
	var seen atomic.Uint64
	go func() {
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			seen.Store(e.Revision())
			if e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var a jobwire.Allocation
			if objects.Unmarshal(e.Value(), &a) == nil && len(a.Tasks) > 1 {
				select {
				case overbooked <- len(a.Tasks):
				default:
				}
			}
		}
	}()
	var hs []*jobs.Handle
	for i := range 8 {
		hs = append(hs, c.submit(sh("one-cpu-"+strconv.Itoa(i), "sleep 0.05")))
	}
	if _, err := jobs.WaitAll(c.ctx, hs); err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 10*time.Second, "every allocation seen", func() bool {
		e, err := kv.Get(c.ctx, jobwire.AllocKey("w1"))
		return err == nil && seen.Load() >= e.Revision()
	})
	select {
	case n := <-overbooked:
		t.Fatalf("worker with 1 CPU held %d one-CPU tasks at once", n)
	default:
	}
}

func TestWaitAllFailsFastOnTheFirstFailedJob(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 4, nil)
	slow := c.submit(sh("slow", "sleep 600"))
	bad := c.submit(sh("bad", "exit 1"))
	start := time.Now()
	_, err := jobs.WaitAll(c.ctx, []*jobs.Handle{slow, bad})
	var fe *jobs.FailedError
	if !errorsAs(err, &fe) || fe.ID != bad.ID() || time.Since(start) > 10*time.Second {
		t.Fatalf("WaitAll = %v after %s", err, time.Since(start))
	}
	if err := slow.Terminate(c.ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSubmittingALiveJobsNameAgainSaysItAdoptedIt(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 2, nil)
	first := c.submit(sh("twice", "sleep 600"))
	defer first.Terminate(context.WithoutCancel(c.ctx))
	if first.Adopted() {
		t.Fatal("a new job reported as adopted")
	}
	again := c.submit(sh("twice", "echo another command"))
	if !again.Adopted() || again.ID() != first.ID() {
		t.Fatalf("second submission: id %s adopted %v; want the live job %s, adopted", again.ID(), again.Adopted(), first.ID())
	}
}
