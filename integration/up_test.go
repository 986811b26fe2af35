package integration

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
)

func TestFrayUpServesTasksAndStopsCleanlyOnCtrlC(t *testing.T) {
	port := frayt.FreePort(t)
	up := start(t, "fray", nil, "up", "--workers", "2", "--port", fmt.Sprint(port))
	line := up.waitLine("export FRAY_CLUSTER_SPEC=", 60*time.Second)
	url := strings.TrimPrefix(line, "export FRAY_CLUSTER_SPEC=")
	if url != fmt.Sprintf("nats://127.0.0.1:%d", port) {
		t.Fatalf("fray up printed %q", line)
	}
	out, errOut, code := runFray(t, []string{"FRAY_CLUSTER_SPEC=" + url}, time.Minute, "run", "fray.echo", "--arg", `[1, "two"]`, "--wait")
	if code != 0 || strings.TrimSpace(out) != `[1,"two"]` {
		t.Fatalf("fray run against fray up: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	stopUp(t, up)
}

func TestCLIRejectsBadInputWithClearErrors(t *testing.T) {
	cases := []struct {
		args []string
		env  []string
		want string
		code int // the exit status, or 0 for any failure
	}{
		{[]string{"run", "fray.echo"}, []string{"FRAY_CLUSTER_SPEC="}, "no cluster given", 0},
		{[]string{"run", "fray.echo", "--nats", "redis://x"}, nil, "accepted forms", 0},
		{[]string{"run", "fray.echo", "--arg", "{not json", "--nats", "nats://127.0.0.1:1"}, nil, "is not JSON", 2},
		{[]string{"bench", "objects", "--size", "lots"}, nil, "want a positive number of bytes", 0},
		{[]string{"up", "extra", "--port", "15233"}, nil, `fray up: unexpected argument "extra"`, 0},
		{[]string{"result", ""}, nil, `fray result: empty argument where a future ID`, 0},
		{[]string{"run", "fray.echo"}, []string{"FRAY_CLUSTER_SPEC=local"}, "run `fray up` and pass the URL it prints", 0},
		{[]string{"nosuchcommand"}, nil, "unknown command", 0},
	}
	for _, c := range cases {
		_, errOut, code := runFray(t, c.env, time.Minute, c.args...)
		if code == 0 || c.code != 0 && code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("fray %s: exit %d, stderr %q; want exit %d mentioning %q", strings.Join(c.args, " "), code, errOut, c.code, c.want)
		}
	}
}

// stopUp sends fray up a Ctrl-C and waits for it to exit cleanly.
func stopUp(t *testing.T, up *proc) {
	t.Helper()
	up.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-up.done:
		if up.err != nil {
			t.Fatalf("fray up exited with %v after Ctrl-C:\n%s", up.err, up.Output())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("fray up still running 30s after Ctrl-C:\n%s", up.Output())
	}
}

// An idle fray up stops at once on Ctrl-C, saying only that it stops: it
// used to wait seconds on its own client's clean-up against the broker it
// had just shut down, and print write errors from it.
func TestIdleFrayUpStopsQuietlyWithinASecondOrTwoOfCtrlC(t *testing.T) {
	up := start(t, "fray", nil, "up", "--workers", "2", "--port", "-1")
	up.waitLine("export FRAY_CLUSTER_SPEC=", 60*time.Second)
	up.cmd.Process.Signal(syscall.SIGINT)
	// The bound is generous for a loaded machine; the slow stop took the
	// NATS request timeout (5 s) at least.
	select {
	case <-up.done:
		if up.err != nil {
			t.Fatalf("fray up exited with %v after Ctrl-C:\n%s", up.err, up.Output())
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("idle fray up still running 3s after Ctrl-C:\n%s", up.Output())
	}
	for _, l := range strings.Split(strings.TrimSpace(up.Output()), "\n") {
		own := false
		for _, p := range []string{"fray up: ", "export FRAY_CLUSTER_SPEC=", "dashboard: ", "metrics: "} {
			own = own || strings.HasPrefix(l, p)
		}
		if !own {
			t.Errorf("fray up printed %q while stopping idle; want only its own lines", l)
		}
	}
}
