package dispatcher_test

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
)

// noCUDAEnv starts the test's workers without CUDA_VISIBLE_DEVICES.
func noCUDAEnv(t *testing.T) {
	t.Setenv(jobs.EnvCUDAVisibleDevices, "") // restored when the test ends
	os.Unsetenv(jobs.EnvCUDAVisibleDevices)
}

func gpuJob(t *testing.T, name, script string) jobs.JobRequest {
	req := sh(name, script)
	if err := req.WithGPU("H100", 1); err != nil {
		t.Fatal(err)
	}
	return req
}

func gpuWorker(n int) jobs.RunnerOptions {
	return jobs.RunnerOptions{DeviceKind: jobs.DeviceGPU, DeviceVariant: "H100", DeviceCount: n}
}

func TestTwoGPUJobsOnOneWorkerSeeDifferentDevices(t *testing.T) {
	noCUDAEnv(t)
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 4, nil, gpuWorker(2))
	script := `echo "cuda=$CUDA_VISIBLE_DEVICES"; exec sleep 600`
	a, b := c.submit(gpuJob(t, "a", script)), c.submit(gpuJob(t, "b", script))
	seen := map[string]string{} // job → its line
	frayt.Eventually(t, 20*time.Second, "both jobs running and printed", func() bool {
		for _, h := range []*jobs.Handle{a, b} {
			if l, err := h.Logs(c.ctx, 0); err == nil && len(l) > 0 {
				seen[h.ID()] = l[0].Text
			}
		}
		return len(seen) == 2 && c.info(a).Running() == 1 && c.info(b).Running() == 1
	})
	if seen[a.ID()] == seen[b.ID()] || !slices.Contains([]string{"cuda=0", "cuda=1"}, seen[a.ID()]) || !slices.Contains([]string{"cuda=0", "cuda=1"}, seen[b.ID()]) {
		t.Fatalf("jobs printed %q, want cuda=0 and cuda=1", seen)
	}
	for _, h := range []*jobs.Handle{a, b} {
		at := c.info(h).Tasks[0].Current()
		if at == nil || len(at.Devices) != 1 || "cuda="+at.Devices[0] != seen[h.ID()] {
			t.Fatalf("%s: attempt %+v does not record the device it printed (%s)", h.ID(), at, seen[h.ID()])
		}
	}
	for _, h := range []*jobs.Handle{a, b} {
		if err := h.Terminate(c.ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGPUJobPlacedWhileAStoppedJobShutsDownWaitsForItsDevice(t *testing.T) {
	noCUDAEnv(t)
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 4, nil, gpuWorker(1))
	done := t.TempDir() + "/a-done"
	// a takes a second to shut down after SIGTERM, holding the GPU.
	a := c.submit(gpuJob(t, "a", `trap 'sleep 1; touch `+done+`; exit 0' TERM; echo up; sleep 600 & wait`))
	frayt.Eventually(t, 20*time.Second, "a running", func() bool {
		l, err := a.Logs(c.ctx, 0)
		return err == nil && len(l) > 0 && c.info(a).Running() == 1
	})
	if err := a.Terminate(c.ctx); err != nil { // frees the GPU in the dispatcher's books at once
		t.Fatal(err)
	}
	b := c.wait(c.submit(gpuJob(t, "b", `if [ -e `+done+` ]; then echo "after a, cuda=$CUDA_VISIBLE_DEVICES"; else echo "beside a"; fi`)))
	if b.Status != jobs.StatusSucceeded || b.Preemptions != 0 || b.Failures != 0 {
		t.Fatalf("b %s (preemptions %d, failures %d): %s", b.Status, b.Preemptions, b.Failures, b.Error)
	}
	l, err := c.jc.Handle(b.ID).Logs(c.ctx, 0)
	if err != nil || len(l) != 1 || l[0].Text != "after a, cuda=0" {
		t.Fatalf("b's logs %v %v", l, err)
	}
}

func TestDevicesBusyExitRerunsTheJobWithoutSpendingFailuresOrDrainingTheWorker(t *testing.T) {
	noCUDAEnv(t)
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 4, nil, gpuWorker(1))
	h := c.submit(gpuJob(t, "busy", `[ "$FRAY_JOB_ATTEMPT" -ge 1 ] || exec sleep 600`))
	frayt.Eventually(t, 20*time.Second, "attempt 0 running", func() bool { return c.info(h).Running() == 1 })
	r := c.info(h)
	// What w1's runner reports when it finds the GPU it was given held.
	c.publishEvent(jobwire.EventSubject("w1", r.ID), jobwire.TaskEvent{Job: r.ID, Run: r.Run, Task: 0, Attempt: 0, Worker: "w1", Kind: jobwire.EventExited,
		ExitCode: -1, Error: "cannot start: devices busy: gpu 0 held by job /test/other task 0 attempt 0", DevicesBusy: true})
	r = c.wait(h)
	if r.Status != jobs.StatusSucceeded || r.Preemptions != 1 || r.Failures != 0 || r.Tasks[0].Worker != "w1" {
		t.Fatalf("status %s preemptions %d failures %d on %s: %s", r.Status, r.Preemptions, r.Failures, r.Tasks[0].Worker, r.Error)
	}
	if a := r.Tasks[0].Attempts[0]; a.State != jobs.TaskStopped {
		t.Fatalf("first attempt %+v", a)
	}
}
