package frayt

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/frayhq/fray/integration/backends"
)

var (
	pyOnce sync.Once
	pyVenv backends.Venv
	pyErr  error
)

// Python returns the interpreter of the frayhq test virtualenv
// (backends.PyVenv, made on first use: Python 3.12 with cbor2, cloudpickle,
// nats-py) and the module search path that finds frayhq (python/src) and
// the Go tests' Python fixtures (python/tests/runtime/fixtures). A test
// fails, never skips, when the environment cannot be made.
func Python(t testing.TB) (python string, paths []string) {
	t.Helper()
	pyOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		pyVenv, pyErr = backends.Ensure(ctx, backends.PyVenv)
	})
	if pyErr != nil {
		t.Fatalf("the Python test environment: %v", pyErr)
	}
	root, err := backends.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return pyVenv.Bin("python"), []string{filepath.Join(root, "python", "src"), filepath.Join(root, "python", "tests", "runtime", "fixtures")}
}

// PythonEnv is this process's environment with PYTHONPATH set to paths.
func PythonEnv(paths []string) []string {
	env := []string{"PYTHONPATH=" + strings.Join(paths, string(os.PathListSeparator))}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYTHONPATH=") {
			env = append(env, kv)
		}
	}
	return env
}
