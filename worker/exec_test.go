package worker_test

import (
	"errors"
	"strings"
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
