package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/jobs"
)

// jobsCluster runs a fray-broker and one fray-worker per entry of workers
// (each entry: id, then extra fray-worker flags), with short leases and
// grace periods so failures show quickly.
func jobsCluster(t *testing.T, workers ...[]string) (*brokerProc, *fray.Client) {
	t.Helper()
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	for _, w := range workers {
		startWorker(t, c, w[0], append([]string{"--lease-ttl", "2s", "--job-grace", "2s", "--cpu", "1"}, w[1:]...)...)
	}
	return b, c
}

func jobHandle(t *testing.T, c *fray.Client, id string) *jobs.Handle {
	t.Helper()
	h, err := c.Job(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func jobRecord(t *testing.T, c *fray.Client, id string) *jobs.Record {
	t.Helper()
	r, err := jobHandle(t, c, id).Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// jobProcesses lists the pids of live processes whose environment carries
// FRAY_JOB_ID=id.
func jobProcesses(id string) []int {
	needle := []byte("\x00" + jobs.EnvJobID + "=" + id + "\x00")
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []int
	for _, d := range dirs {
		env, err := os.ReadFile(d + "/environ")
		if err != nil {
			continue
		}
		if stat, err := os.ReadFile(d + "/stat"); err == nil && bytes.Contains(stat, []byte(") Z ")) {
			continue // a zombie is gone, only not reaped yet
		}
		if bytes.Contains(append([]byte{0}, append(env, 0)...), needle) {
			pid, _ := strconv.Atoi(filepath.Base(d))
			out = append(out, pid)
		}
	}
	return out
}

func TestSubmitWaitPrintsTheJobOutputAndExitsZero(t *testing.T) {
	b, _ := jobsCluster(t, []string{"w1"}, []string{"w2"})
	out, errOut, code := runFray(t, nil, time.Minute, "submit", "--nats", b.URL, "--name", "hello", "--wait", "--", "sh", "-c", "echo hello; exit 0")
	if code != 0 || !strings.Contains(out, "hello\n") || lastLine(out) != "/default/hello" {
		t.Fatalf("code %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

func TestFailingCommandEndsFailedAndTheCLIExitsNonZeroWithTheError(t *testing.T) {
	b, c := jobsCluster(t, []string{"w1"}, []string{"w2"})
	out, errOut, code := runFray(t, nil, time.Minute, "submit", "--nats", b.URL, "--name", "bad", "--wait", "--", "sh", "-c", "echo about to fail; exit 3")
	if code == 0 || !strings.Contains(errOut, "FAILED") || !strings.Contains(errOut, "code 3") || !strings.Contains(errOut, "about to fail") {
		t.Fatalf("code %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if r := jobRecord(t, c, "/default/bad"); r.Status != jobs.StatusFailed {
		t.Fatalf("status %s", r.Status)
	}
	out, _, code = runFray(t, nil, time.Minute, "jobs", "status", "/default/bad", "--nats", b.URL, "--json")
	var st map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st["status"] != "FAILED" {
		t.Fatalf("jobs status --json: %d %s", code, out)
	}
}

func TestAMissingWorkdirFailsTheJobNamingTheDirectory(t *testing.T) {
	b, _ := jobsCluster(t, []string{"w1"})
	out, errOut, code := runFray(t, nil, time.Minute, "submit", "--nats", b.URL, "--name", "nowhere", "--workdir", "/no/such/dir", "--wait", "--", "pwd")
	if code == 0 || !strings.Contains(errOut, "workdir /no/such/dir: no such file or directory") {
		t.Fatalf("code %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

func TestStopEndsASleepingJobWithinFiveSecondsLeavingNoProcess(t *testing.T) {
	b, c := jobsCluster(t, []string{"w1"}, []string{"w2"})
	out, errOut, code := runFray(t, nil, time.Minute, "submit", "--nats", b.URL, "--name", "sleeper", "--", "sleep", "600")
	if code != 0 || lastLine(out) != "/default/sleeper" {
		t.Fatalf("submit: %d %s %s", code, out, errOut)
	}
	waitFor(t, 20*time.Second, "sleep running", func() bool {
		return jobRecord(t, c, "/default/sleeper").Running() == 1 && len(jobProcesses("/default/sleeper")) > 0
	})
	start := time.Now()
	out, errOut, code = runFray(t, nil, time.Minute, "stop", "--nats", b.URL, "/default/sleeper")
	if code != 0 || !strings.Contains(out, "STOPPED") {
		t.Fatalf("stop: %d %s %s", code, out, errOut)
	}
	waitFor(t, 5*time.Second-time.Since(start), "no process left", func() bool { return len(jobProcesses("/default/sleeper")) == 0 })
}

func TestTimeoutStopsTheJobAndItsProcesses(t *testing.T) {
	b, c := jobsCluster(t, []string{"w1"})
	_, errOut, code := runFray(t, nil, time.Minute, "submit", "--nats", b.URL, "--name", "slow", "--timeout", "1s", "--wait", "--", "sh", "-c", "sleep 600 & sleep 600")
	if code == 0 || !strings.Contains(errOut, "STOPPED") || !strings.Contains(errOut, "timed out") {
		t.Fatalf("code %d stderr %s", code, errOut)
	}
	if r := jobRecord(t, c, "/default/slow"); r.Status != jobs.StatusStopped {
		t.Fatalf("status %s", r.Status)
	}
	waitFor(t, 10*time.Second, "no process left", func() bool { return len(jobProcesses("/default/slow")) == 0 })
}

func TestLostWorkerReruns(t *testing.T) {
	for _, budget := range []int{1, 0} {
		t.Run(fmt.Sprintf("MaxRetriesPreemption=%d", budget), func(t *testing.T) {
			b, c := jobsCluster(t)
			w1 := startWorker(t, c, "w1", "--lease-ttl", "2s", "--cpu", "1")
			name := fmt.Sprintf("survivor%d", budget)
			_, errOut, code := runFray(t, nil, time.Minute, "submit", "--nats", b.URL, "--name", name, "--max-retries-preemption", strconv.Itoa(budget),
				"--", "sh", "-c", `if [ "$FRAY_JOB_ATTEMPT" -ge 1 ]; then echo rerun; else exec sleep 600; fi`)
			if code != 0 {
				t.Fatal(errOut)
			}
			id := "/default/" + name
			waitFor(t, 20*time.Second, "running on w1", func() bool {
				r := jobRecord(t, c, id)
				return r.Running() == 1 && r.Tasks[0].Worker == "w1"
			})
			startWorker(t, c, "w2", "--lease-ttl", "2s", "--cpu", "1")
			w1.Kill()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := jobHandle(t, c, id).Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if budget > 0 {
				if r.Status != jobs.StatusSucceeded || r.Tasks[0].Worker != "w2" || r.Preemptions != 1 {
					t.Fatalf("status %s on %s, preemptions %d: %s", r.Status, r.Tasks[0].Worker, r.Preemptions, r.Error)
				}
			} else if r.Status != jobs.StatusFailed || !strings.Contains(r.Error, "w1") {
				t.Fatalf("status %s error %q", r.Status, r.Error)
			}
			waitFor(t, 10*time.Second, "no process left", func() bool { return len(jobProcesses(id)) == 0 })
		})
	}
}

func TestGangLandsOnOneSliceOrStaysPendingWithAReason(t *testing.T) {
	var ws [][]string
	for i := range 4 {
		ws = append(ws, []string{fmt.Sprintf("a%d", i), "--attr", "tpu-name=a"})
	}
	for i := range 2 {
		ws = append(ws, []string{fmt.Sprintf("b%d", i), "--attr", "tpu-name=b"})
	}
	b, c := jobsCluster(t, ws...)
	_, errOut, code := runFray(t, nil, time.Minute, "submit", "--nats", b.URL, "--name", "gang4", "--replicas", "4", "--group-by", "tpu-name", "--", "sleep", "600")
	if code != 0 {
		t.Fatal(errOut)
	}
	waitFor(t, 20*time.Second, "4 replicas running", func() bool { return jobRecord(t, c, "/default/gang4").Running() == 4 })
	for _, tk := range jobRecord(t, c, "/default/gang4").Tasks {
		if !strings.HasPrefix(tk.Worker, "a") {
			t.Fatalf("replica %d on %s, want slice a", tk.Index, tk.Worker)
		}
	}
	_, errOut, code = runFray(t, nil, time.Minute, "submit", "--nats", b.URL, "--name", "gang8", "--replicas", "8", "--group-by", "tpu-name", "--", "sleep", "600")
	if code != 0 {
		t.Fatal(errOut)
	}
	waitFor(t, 10*time.Second, "gang8 pending with a reason", func() bool {
		r := jobRecord(t, c, "/default/gang8")
		return r.Status == jobs.StatusPending && strings.Contains(r.PendingReason, "tpu-name")
	})
	t.Logf("gang8: %s", jobRecord(t, c, "/default/gang8").PendingReason)
	for _, id := range []string{"/default/gang4", "/default/gang8"} {
		if _, e, code := runFray(t, nil, time.Minute, "stop", "--nats", b.URL, id); code != 0 {
			t.Fatal(e)
		}
	}
	waitFor(t, 10*time.Second, "no process left", func() bool { return len(jobProcesses("/default/gang4")) == 0 })
}

func TestChildJobIsListedUnderItsParentAndStoppedWithIt(t *testing.T) {
	b, c := jobsCluster(t, []string{"w1", "--cpu", "4"})
	script := `"$FRAY_BIN" submit --name child -- sleep 600 && exec sleep 600`
	_, errOut, code := runFray(t, nil, time.Minute, "submit", "--nats", b.URL, "--name", "parent", "--env", "FRAY_BIN="+bin["fray"], "--", "sh", "-c", script)
	if code != 0 {
		t.Fatal(errOut)
	}
	waitFor(t, 30*time.Second, "child running", func() bool {
		r, err := jobHandle(t, c, "/default/parent/child").Info(context.Background())
		return err == nil && r.Running() == 1
	})
	out, _, code := runFray(t, nil, time.Minute, "jobs", "--nats", b.URL, "--json")
	var list []jobs.Record
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
		t.Fatalf("jobs --json: %d %s", code, out)
	}
	found := false
	for _, r := range list {
		found = found || r.ID == "/default/parent/child" && r.Parent == "/default/parent"
	}
	if !found {
		t.Fatalf("child not listed under parent: %s", out)
	}
	if _, e, code := runFray(t, nil, time.Minute, "stop", "--nats", b.URL, "/default/parent"); code != 0 {
		t.Fatal(e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := jobHandle(t, c, "/default/parent/child").Wait(ctx)
	if err != nil || r.Status != jobs.StatusStopped {
		t.Fatalf("child: %v %v", r, err)
	}
	waitFor(t, 10*time.Second, "no process left", func() bool {
		return len(jobProcesses("/default/parent")) == 0 && len(jobProcesses("/default/parent/child")) == 0
	})
}

func TestLogsFollowReceivesAHundredThousandLinesInOrder(t *testing.T) {
	b, _ := jobsCluster(t, []string{"w1"})
	const n = 100000
	_, errOut, code := runFray(t, nil, time.Minute, "submit", "--nats", b.URL, "--name", "chatty", "--", "seq", "1", strconv.Itoa(n))
	if code != 0 {
		t.Fatal(errOut)
	}
	out, errOut, code := runFray(t, nil, 2*time.Minute, "logs", "-f", "--nats", b.URL, "/default/chatty")
	if code != 0 {
		t.Fatalf("logs -f: %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("got %d lines, want %d", len(lines), n)
	}
	for i, l := range lines {
		if l != strconv.Itoa(i+1) {
			t.Fatalf("line %d is %q", i+1, l)
		}
	}
}

func TestJobsSurviveABrokerRestart(t *testing.T) {
	store := t.TempDir()
	b := startBroker(t, store, 0)
	c := client(t, b.URL)
	startWorker(t, c, "w1", "--lease-ttl", "3s", "--cpu", "2")
	gate := filepath.Join(t.TempDir(), "go")
	_, errOut, code := runFray(t, nil, time.Minute, "submit", "--nats", b.URL, "--name", "across", "--",
		"sh", "-c", `while [ ! -e `+gate+` ]; do sleep 0.05; done; echo finished`)
	if code != 0 {
		t.Fatal(errOut)
	}
	waitFor(t, 20*time.Second, "running", func() bool { return jobRecord(t, c, "/default/across").Running() == 1 })
	b.Kill()
	b2 := startBroker(t, store, b.Port)
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c2 := client(t, b2.URL)
	// A job submitted after the restart runs too.
	out, errOut, code := runFray(t, nil, time.Minute, "submit", "--nats", b2.URL, "--name", "after", "--wait", "--", "echo", "after restart")
	if code != 0 || !strings.Contains(out, "after restart") {
		t.Fatalf("after restart: %d %s %s", code, out, errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := jobHandle(t, c2, "/default/across").Wait(ctx)
	if err != nil || r.Status != jobs.StatusSucceeded {
		t.Fatalf("across the restart: %+v %v", r, err)
	}
	lines, err := jobHandle(t, c2, "/default/across").Logs(ctx, 0)
	if err != nil || len(lines) != 1 || lines[0].Text != "finished" {
		t.Fatalf("logs %v %v", lines, err)
	}
}
