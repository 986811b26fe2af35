package integration

import (
	"testing"
	"time"
)

// A replica's command often starts the real program as its own child
// (sh -c 'python train.py', torchrun's ranks). When the worker is
// SIGKILLed, those must die with it too, not run on beside the rerun.
func TestAKilledWorkersJobLeavesNoProcessItsCommandStarted(t *testing.T) {
	b, c := jobsCluster(t)
	w1 := startWorker(t, c, "w1", "--lease-ttl", "2s", "--cpu", "1")
	_, errOut, code := runFray(t, nil, time.Minute, "submit", "--nats", b.URL, "--name", "orphans", "--", "sh", "-c", "sleep 600 & sleep 600 & wait")
	if code != 0 {
		t.Fatal(errOut)
	}
	id := "/default/orphans"
	waitFor(t, 20*time.Second, "sh and both sleeps running", func() bool { return len(jobProcesses(id)) == 3 })
	w1.Kill()
	waitFor(t, 10*time.Second, "no process of the job left", func() bool { return len(jobProcesses(id)) == 0 })
}
