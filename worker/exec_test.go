package worker_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
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
