package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/tasks"
)

// runBinary runs a daemon binary that should exit by itself and returns
// its combined output and exit code.
func runBinary(t *testing.T, name string, timeout time.Duration, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin[name], args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: still running after %s:\n%s", name, strings.Join(args, " "), timeout, out)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return string(out), code
}

// A mistake on a daemon's command line exits 2 with a line naming the
// flag, before anything connects or starts: not "no servers available"
// from a cluster that is not up yet, and not the flag package's message
// twice.
func TestDaemonFlagMistakesExitTwoNamingTheFlagBeforeConnecting(t *testing.T) {
	unreachable := "nats://127.0.0.1:1"
	cases := []struct {
		bin  string
		args []string
		want string
	}{
		{"fray-worker", []string{"--concurrency", "-3"}, "--concurrency -3"},
		{"fray-worker", []string{"--pool", "gpu.a100"}, `--pool "gpu.a100"`},
		{"fray-worker", []string{"--ack-wait", "10ms"}, "--ack-wait 10ms"},
		{"fray-worker", []string{"--lease-ttl", "10ms"}, "--lease-ttl 10ms"},
		{"fray-worker", []string{"--drain-timeout", "-1s"}, "--drain-timeout -1s"},
		{"fray-worker", []string{"--gpu", "H100:x"}, `--gpu "H100:x"`},
		{"fray-worker", []string{"--ram", "lots"}, `--ram "lots"`},
		{"fray-worker", []string{"--id", "a b"}, `--id "a b"`},
		{"fray-worker", []string{"--attr", "novalue"}, `--attr "novalue"`},
		{"fray-worker", []string{"--exec", "noequals"}, `--exec "noequals"`},
		{"fray-worker", []string{"--log-level", "loud"}, `--log-level "loud"`},
		{"fray-worker", []string{"--bogus"}, "flag provided but not defined: -bogus"},
		{"fray-broker", []string{"--sync", "sometimes"}, `--sync "sometimes"`},
		{"fray-broker", []string{"--result-ttl", "0s"}, "--result-ttl 0s"},
		{"fray-broker", []string{"--object-ttl", "-1h"}, "--object-ttl -1h"},
		{"fray-broker", []string{"--port", "99999"}, "--port 99999"},
		{"fray-broker", []string{"--http-port", "-5"}, "--http-port -5"},
		{"fray-broker", []string{"--replicas", "2"}, "--replicas 2"},
		{"fray-broker", []string{"--bogus"}, "flag provided but not defined: -bogus"},
	}
	for _, c := range cases {
		args := append([]string{"--nats", unreachable}, c.args...)
		if c.bin == "fray-broker" {
			args = append([]string{"--store", t.TempDir()}, c.args...)
		}
		out, code := runBinary(t, c.bin, 20*time.Second, args...)
		if code != 2 || !strings.Contains(out, c.want) || strings.Count(out, c.want) != 1 || strings.Contains(out, "no servers available") {
			t.Errorf("%s %s: exit %d, output:\n%s\nwant exit 2 saying %q once", c.bin, strings.Join(args, " "), code, out, c.want)
		}
	}
}

// fray-worker --drain-timeout 0 hands running tasks back at once on
// SIGTERM (0 is not "the default 30 s").
func TestWorkerWithDrainTimeoutZeroHandsRunningTasksBackAtOnce(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	w := startWorker(t, c, "quick", "--concurrency", "1", "--drain-timeout", "0s")
	ctx := frayt.Context(t, 2*time.Minute)
	f := c.Run(ctx, "fray.sleep", 60.0)
	waitFor(t, 20*time.Second, "the task running", func() bool {
		for _, wi := range c.Workers() {
			if wi.ID == "quick" && wi.Running == 1 {
				return true
			}
		}
		return false
	})
	start := time.Now()
	if err := w.Term(20 * time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, w.Output())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the worker took %s to stop with --drain-timeout 0", d)
	}
	// Handed back, the task runs on the next worker (cut short by a cancel).
	startWorker(t, c, "next", "--concurrency", "1")
	waitFor(t, 30*time.Second, "the task running again", func() bool {
		for _, wi := range c.Workers() {
			if wi.ID == "next" && wi.Running == 1 {
				return true
			}
		}
		return false
	})
	if err := f.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
}

// The first Ctrl-C lets fray up's workers drain (up to 30 s); a second
// one stops it at once, exiting 130.
func TestFrayUpStopsAtOnceOnASecondCtrlC(t *testing.T) {
	up := start(t, "fray", nil, "up", "--workers", "1", "--port", "-1")
	line := up.waitLine("export FRAY_CLUSTER_SPEC=", 60*time.Second)
	url := strings.TrimPrefix(line, "export FRAY_CLUSTER_SPEC=")
	c := client(t, url)
	ctx := frayt.Context(t, time.Minute)
	if err := c.Run(ctx, "fray.sleep", 60.0).Queued(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the task running", func() bool {
		for _, w := range c.Workers() {
			if w.Running == 1 {
				return true
			}
		}
		return false
	})
	up.cmd.Process.Signal(syscall.SIGINT)
	waitFor(t, 10*time.Second, "fray up stopping", func() bool { return strings.Contains(up.Output(), "Ctrl-C again to stop at once") })
	start := time.Now()
	up.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-up.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("fray up still running 15s after a second Ctrl-C:\n%s", up.Output())
	}
	if code := up.cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("fray up exited %d after a second Ctrl-C (in %s), want 130:\n%s", code, time.Since(start), up.Output())
	}
}

// processesRunning counts live processes whose command line is argv.
func processesRunning(t *testing.T, argv ...string) int {
	t.Helper()
	want := strings.Join(argv, "\x00") + "\x00"
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range dirs {
		if b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline")); err == nil && string(b) == want {
			n++
		}
	}
	return n
}

// A worker that dies (SIGKILL, the OOM killer) takes its --exec commands
// with it: they do not run on, orphaned, beside the task's next attempt.
func TestASIGKILLedWorkerTakesItsExecCommandsWithIt(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	victim := startWorker(t, c, "victim", "--pool", "exec", "--concurrency", "1", "--exec", "long=sleep 986.5 | cat")
	ctx := frayt.Context(t, time.Minute)
	f := c.Run(ctx, "long", nil, tasks.Pool("exec"))
	waitFor(t, 20*time.Second, "the command running", func() bool { return processesRunning(t, "sleep", "986.5") == 1 })
	victim.Kill() // the worker's own process group: its commands have theirs
	waitFor(t, 20*time.Second, "the command gone with its worker", func() bool { return processesRunning(t, "sleep", "986.5") == 0 })
	if err := f.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
}

// fray-worker prints its ready line only once it is registered: a worker
// that cannot register (its id is taken by a live worker) never says it is
// ready.
func TestWorkerSaysReadyOnlyOnceRegistered(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	startWorker(t, c, "taken")
	second := start(t, "fray-worker", nil, "--nats", b.URL, "--id", "taken", "--log-level", "warn")
	if code := exitWithin(t, second, 30*time.Second); code == 0 {
		t.Fatalf("a second worker with a live worker's id exited 0:\n%s", second.Output())
	}
	if out := second.Output(); strings.Contains(out, "fray-worker ready") || !strings.Contains(out, "taken") {
		t.Fatalf("a worker that could not register:\n%s\nwant no ready line, and an error naming its id", out)
	}
}
