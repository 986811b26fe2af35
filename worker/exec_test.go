package worker_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/tasks"
	"github.com/frayhq/fray/worker"
)

// A command killed by a signal (the OOM killer's SIGKILL, say) is reported
// as such, not as "exited with status -1".
func TestExecHandlerSaysWhichSignalKilledTheCommand(t *testing.T) {
	h := worker.ExecHandler(`echo "about to die" >&2; kill -9 $$`)
	_, err := h(frayt.Context(t, 20*time.Second), nil)
	var ee *worker.ExecError
	if !errors.As(err, &ee) || ee.Signal != 9 || !strings.Contains(err.Error(), "killed by signal 9 (killed)") ||
		strings.Contains(err.Error(), "status -1") || !strings.Contains(err.Error(), "about to die") {
		t.Fatalf("got %v, want an ExecError saying signal killed, with the stderr tail", err)
	}
}

// A command that prints without end is killed once its stdout passes the
// limit, and its task fails as too large: the worker does not buffer it.
func TestExecHandlerKillsACommandWhoseOutputPassesTheLimit(t *testing.T) {
	h := worker.ExecHandler(`yes '"flood"'`, worker.ExecMaxOutput(1<<20))
	_, err := h(frayt.Context(t, 20*time.Second), nil)
	if !errors.Is(err, tasks.ErrTooLarge) || !strings.Contains(err.Error(), "1048576-byte limit") {
		t.Fatalf("got %v, want ErrTooLarge naming the 1048576-byte limit", err)
	}
	// Within the limit, output is the result.
	ok := worker.ExecHandler(`echo '"fits"'`, worker.ExecMaxOutput(16))
	if v, err := ok(frayt.Context(t, 20*time.Second), nil); err != nil || v != "fits" {
		t.Fatalf("output within the limit: %v, %v", v, err)
	}
}

// fray's own machinery around an exec command (its watchdog) leaves no
// orphan behind, so a worker that is a container's PID 1 (or a subreaper),
// which adopts every orphan, gathers no zombies from it: here the test
// process plays that part. (Background children a command leaves are
// killed and adopted; reaping those is an init's job: run the worker
// under one, e.g. docker --init.)
func TestExecTasksLeaveNoZombieForASubreaperWorker(t *testing.T) {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, 36 /* PR_SET_CHILD_SUBREAPER */, 1, 0); errno != 0 {
		t.Fatalf("prctl PR_SET_CHILD_SUBREAPER: %v", errno)
	}
	t.Cleanup(func() { syscall.RawSyscall(syscall.SYS_PRCTL, 36, 0, 0) })
	h := worker.ExecHandler(`echo 1`)
	for range 5 {
		if _, err := h(frayt.Context(t, 20*time.Second), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Orphans are adopted asynchronously; a zombie, once there, stays.
	var left []string
	frayt.Eventually(t, 5*time.Second, "no orphan left running", func() bool {
		left = children(t, "")
		return len(left) == 0 || len(children(t, "Z")) > 0
	})
	if len(left) > 0 {
		t.Fatalf("children left: %v", left)
	}
}

// children lists this process's children in the given state ("" for any).
func children(t *testing.T, state string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	self := strconv.Itoa(os.Getpid())
	var out []string
	for _, e := range entries {
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at ")".
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == self && (state == "" || f[0] == state) {
			out = append(out, e.Name()+" "+s[:strings.LastIndexByte(s, ')')+1])
		}
	}
	return out
}
