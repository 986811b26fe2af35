package main

import (
	"flag"
	"fmt"
	"os/exec"

	"github.com/frayhq/fray/worker/langrt"
)

// benchRuntime is the --runtime flag and its Python settings, shared by
// `fray bench tasks` and `fray bench actors`.
type benchRuntime struct {
	runtime string
	python  string
	paths   listFlag
	procs   int
}

func addBenchRuntime(fs *flag.FlagSet, what string) *benchRuntime {
	r := &benchRuntime{}
	fs.StringVar(&r.runtime, "runtime", "go", "where the no-op "+what+" runs: go, or python (in fray's Python runtime, python -m frayhq.runtime, as on fray-worker --python)")
	fs.StringVar(&r.python, "python", "python3", "with --runtime python: the interpreter (it needs the frayhq package and its dependencies)")
	fs.Var(&r.paths, "python-path", "with --runtime python: DIR to put first on PYTHONPATH, e.g. the python/src of a fray checkout (repeatable)")
	if what == "task" {
		fs.IntVar(&r.procs, "python-procs", 0, "with --runtime python: Python processes serving the tasks (default: --concurrency)")
	}
	return r
}

// options returns the Python runtime's options, nil for --runtime go.
func (r *benchRuntime) options(fs *flag.FlagSet) (*langrt.Options, error) {
	switch r.runtime {
	case "go":
		return nil, nil
	case "python":
	default:
		return nil, usagef(fs, "--runtime %q: want go or python", r.runtime)
	}
	py, err := exec.LookPath(r.python)
	if err != nil {
		return nil, usagef(fs, "--python %q: %v", r.python, err)
	}
	if r.procs < 0 {
		return nil, usagef(fs, "--python-procs %d: want at least 1, or 0 for --concurrency", r.procs)
	}
	o := langrt.Python(py, r.paths, nil)
	o.Procs = r.procs
	return &o, nil
}

func (r *benchRuntime) String() string { return fmt.Sprintf("%s runtime", r.runtime) }
