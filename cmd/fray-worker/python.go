package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/internal/daemon"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/worker/langrt"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pythonFlags are the --python flags.
type pythonFlags struct {
	interpreter string // "" without --python
	procs       int
	imports     multi
	paths       multi
}

// pythonFlag is --python[=INTERPRETER]: a flag whose value is optional.
type pythonFlag struct{ p *string }

func (f pythonFlag) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}

func (f pythonFlag) Set(v string) error {
	if v == "true" {
		v = "python3" // --python alone
	}
	if v == "false" || v == "" {
		return fmt.Errorf("want an interpreter, e.g. --python=/usr/bin/python3.12")
	}
	*f.p = v
	return nil
}

func (f pythonFlag) IsBoolFlag() bool { return true }

// joinPythonValue turns "--python INTERPRETER" into "--python=INTERPRETER",
// so the optional value can follow a space too. A next argument that is a
// flag is not taken as the value.
func joinPythonValue(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if (a == "--python" || a == "-python") && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			out = append(out, a+"="+args[i+1])
			i++
			continue
		}
		out = append(out, a)
	}
	return out
}

// check validates the flags before anything connects.
func (pf *pythonFlags) check() error {
	if pf.interpreter == "" {
		if pf.procs != 0 || len(pf.imports) > 0 || len(pf.paths) > 0 {
			return daemon.Usagef("--python-procs, --python-import and --python-path need --python")
		}
		return nil
	}
	if pf.procs < 0 {
		return daemon.Usagef("--python-procs %d: want at least 1, or 0 for --concurrency", pf.procs)
	}
	for _, m := range pf.imports {
		if m == "" || strings.ContainsAny(m, " /\\") {
			return daemon.Usagef("--python-import %q: want a module name such as mypkg.tasks", m)
		}
	}
	path, err := exec.LookPath(pf.interpreter)
	if err != nil {
		return daemon.Usagef("--python %q: no such interpreter (%v)", pf.interpreter, err)
	}
	// Absolute: callable Python jobs run with it in their own workdir.
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	pf.interpreter = path
	for i, d := range pf.paths {
		st, err := os.Stat(d)
		if err != nil || !st.IsDir() {
			return daemon.Usagef("--python-path %q: not a directory", d)
		}
		if abs, err := filepath.Abs(d); err == nil {
			pf.paths[i] = abs
		}
	}
	return nil
}

// start starts the Python runtime for a worker of concurrency slots on
// cluster natsURL, its processes in environ (what job processes get: the
// worker's environment without its credentials, plus --job-env): the code
// they run (pickled callables included) comes from producers. An import
// error (or an interpreter that cannot run frayhq) is a daemon.StartError
// carrying Python's traceback.
func (pf *pythonFlags) start(ctx context.Context, nc *nats.Conn, natsURL string, environ []string, concurrency int, log *slog.Logger) (*langrt.Runtime, error) {
	if pf.interpreter == "" {
		return nil, nil
	}
	procs := pf.procs
	if procs == 0 {
		procs = concurrency
	}
	if procs == 0 {
		procs = runtime.GOMAXPROCS(0)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	store, err := objects.New(ctx, js, objects.Options{})
	if err != nil {
		return nil, fmt.Errorf("python runtime: %w", err)
	}
	env := []string{fray.EnvClusterSpec + "=" + jobs.WithoutUserinfo(natsURL)}
	for _, kv := range environ {
		if !strings.HasPrefix(kv, fray.EnvClusterSpec+"=") {
			env = append(env, kv)
		}
	}
	o := langrt.Python(pf.interpreter, pf.paths, env)
	o.Procs, o.Imports, o.Objects, o.Logger = procs, pf.imports, store, log.With("lang", "python")
	rt, err := langrt.Start(ctx, o)
	if err != nil {
		return nil, daemon.StartError{Err: fmt.Errorf("--python: %w", err)}
	}
	return rt, nil
}
