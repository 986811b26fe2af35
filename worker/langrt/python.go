package langrt

import (
	"os"
	"strings"
)

// PythonModule is the module a Python runtime process runs.
const PythonModule = "frayhq.runtime"

// Python returns the Options of a Python runtime run by interpreter
// (python -m frayhq.runtime) in environment env (nil: this process's),
// with paths first on its module search path: on PYTHONPATH, so that
// frayhq itself may be found there, and in Paths. The caller sets the
// rest (Procs, Imports, Objects, Logger).
func Python(interpreter string, paths, env []string) Options {
	if env == nil {
		env = os.Environ()
	}
	if len(paths) > 0 {
		pp := strings.Join(paths, string(os.PathListSeparator))
		out := make([]string, 0, len(env)+1)
		for _, kv := range env {
			if old, ok := strings.CutPrefix(kv, "PYTHONPATH="); ok {
				if old != "" {
					pp += string(os.PathListSeparator) + old
				}
				continue
			}
			out = append(out, kv)
		}
		env = append(out, "PYTHONPATH="+pp)
	}
	return Options{Command: []string{interpreter, "-m", PythonModule}, Paths: paths, Env: env}
}
