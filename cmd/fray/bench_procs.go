package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/frayhq/fray/internal/bench"
)

// benchProcs holds the flags of `fray bench tasks` that run every part in
// its own process: --producers, --workers, --in-flight, --bin-dir.
type benchProcs struct {
	producers, workers string
	inFlight           int
	binDir             string
}

func addBenchProcs(fs *flag.FlagSet) *benchProcs {
	b := &benchProcs{}
	fs.StringVar(&b.producers, "producers", "", "run the real binaries as separate processes: this many producer processes (a comma-separated list runs each count, e.g. 1,2,4), on one fray-broker process, with --workers fray-worker processes of --concurrency slots each; prints one result (one JSON line with --json) per pair")
	fs.StringVar(&b.workers, "workers", "", "with separate processes: this many fray-worker processes (a comma-separated list runs each count); setting either --producers or --workers selects that mode, the other defaulting to 1")
	fs.IntVar(&b.inFlight, "in-flight", 0, "with separate processes: tasks each producer keeps in flight; p50/p99 are each task's submit-to-result time (default: 2 x every worker's slots / producers, so the slots stay busy without a deep queue)")
	fs.StringVar(&b.binDir, "bin-dir", "", "with separate processes: directory holding fray-broker and fray-worker (default: beside this fray, else $PATH)")
	return b
}

// selected reports whether the process mode was asked for.
func (b *benchProcs) selected() bool { return b.producers != "" || b.workers != "" }

// options builds the bench's options, or a usage error.
func (b *benchProcs) options(fs *flag.FlagSet, n, concurrency int) (bench.ProcsOptions, error) {
	o := bench.ProcsOptions{N: n, Concurrency: concurrency, InFlight: b.inFlight, Progress: os.Stderr}
	var err error
	if o.Producers, err = parseCounts(b.producers); err != nil {
		return o, usagef(fs, "--producers %q: %v", b.producers, err)
	}
	if o.Workers, err = parseCounts(b.workers); err != nil {
		return o, usagef(fs, "--workers %q: %v", b.workers, err)
	}
	if b.inFlight < 0 {
		return o, usagef(fs, "--in-flight %d: want at least 1 task (0: the default)", b.inFlight)
	}
	if err := o.Check(); err != nil {
		return o, usagef(fs, "%v", strings.TrimPrefix(err.Error(), "bench tasks: "))
	}
	if o.Fray, err = os.Executable(); err != nil {
		return o, err
	}
	if o.Broker, err = findBinary(b.binDir, filepath.Dir(o.Fray), "fray-broker"); err != nil {
		return o, usagef(fs, "%v", err)
	}
	if o.Worker, err = findBinary(b.binDir, filepath.Dir(o.Fray), "fray-worker"); err != nil {
		return o, usagef(fs, "%v", err)
	}
	return o, nil
}

// parseCounts reads "4" or "1,2,4" (empty: 1).
func parseCounts(s string) ([]int, error) {
	if s == "" {
		return []int{1}, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 64 {
			return nil, fmt.Errorf("%q is not a count of processes from 1 to 64 (want e.g. 2, or 1,2,4)", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// findBinary finds name in dir if given, else beside fray, else on $PATH.
func findBinary(dir, frayDir, name string) (string, error) {
	if dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("--bin-dir %s: no %s there", dir, name)
		}
		return p, nil
	}
	if p := filepath.Join(frayDir, name); isFile(p) {
		return p, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is neither beside this fray (%s) nor on $PATH; build it or give --bin-dir", name, frayDir)
	}
	return p, nil
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// runBenchProcs runs the process mode and prints each pair's result.
func runBenchProcs(ctx context.Context, o bench.ProcsOptions, asJSON bool) error {
	return bench.Procs(ctx, o, func(r bench.ProcsResult) error {
		if asJSON {
			return printJSON(r)
		}
		fmt.Println(r)
		return nil
	})
}

// benchTasksProducer is the hidden `fray bench _tasks-producer`: one
// producer process of the process mode (see bench.RunProducer).
func benchTasksProducer(ctx context.Context, args []string) error {
	fs := newFlagsFor("bench "+bench.ProducerCommand, "[flags]", "One producer process of `fray bench tasks --producers`; not for direct use.")
	url := fs.String("nats", "", "cluster URL")
	n := fs.Int("n", 0, "tasks to run")
	inFlight := fs.Int("in-flight", 256, "tasks kept in flight")
	if _, err := parsePositional(fs, args, 0, 0, ""); err != nil {
		return err
	}
	if *url == "" || *n < 1 || *inFlight < 1 {
		return usagef(fs, "want --nats URL, --n >= 1 and --in-flight >= 1")
	}
	err := bench.RunProducer(ctx, *url, *n, *inFlight, os.Stdin, os.Stdout)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
