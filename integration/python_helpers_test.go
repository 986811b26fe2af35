package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/internal/frayt"
)

// pythonArgs are the fray-worker flags serving the Python fixtures
// (python/tests/runtime/fixtures/rtfixtures.py) with the test venv's
// interpreter, and the environment that finds frayhq.
func pythonArgs(t *testing.T, imports ...string) (args, env []string) {
	t.Helper()
	py, paths := frayt.Python(t)
	if len(imports) == 0 {
		imports = []string{"rtfixtures"}
	}
	args = []string{"--python", py, "--python-path", paths[1]}
	for _, m := range imports {
		args = append(args, "--python-import", m)
	}
	return args, frayt.PythonEnv(paths[:1])
}

// startPythonWorker runs fray-worker --python against c's cluster and waits
// until it is registered offering the fixtures' function rt.double and
// actor class rt.Counter.
func startPythonWorker(t *testing.T, c *fray.Client, id string, args ...string) *proc {
	t.Helper()
	pargs, env := pythonArgs(t)
	env = append(env, actors.EnvLeaseTTL+"="+actorsLeaseTTL.String())
	all := append([]string{"--nats", c.URL(), "--id", id, "--log-level", "info", "--lease-ttl", "2s"}, pargs...)
	p := start(t, "fray-worker", env, append(all, args...)...)
	waitFor(t, 60*time.Second, "python worker "+id+" registered", func() bool {
		for _, w := range c.Workers() {
			if w.ID == id && slices.Contains(w.Handlers, "rt.double") && slices.Contains(w.ActorClasses, "rt.Counter") {
				return true
			}
		}
		return false
	})
	return p
}

// pyBytes runs Python code in the test venv (frayhq importable) and returns
// what it wrote to stdout: how a test makes pickled values only Python can.
func pyBytes(t *testing.T, code string, args ...string) []byte {
	t.Helper()
	py, paths := frayt.Python(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{"-c", code}, args...)...)
	cmd.Env = frayt.PythonEnv(paths)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("python: %v\n%s", err, errb.String())
	}
	return out.Bytes()
}

// pidAlive reports whether process pid exists (and is not a zombie).
func pidAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}
