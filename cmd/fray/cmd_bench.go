package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/frayhq/fray/internal/bench"
)

func init() {
	register(command{name: "bench", summary: "measure fray on this machine: fray bench tasks|objects|actors|jobs", run: runBench})
}

func runBench(ctx context.Context, args []string) error {
	subs := map[string]func(context.Context, []string) error{
		"tasks": benchTasks, "objects": benchObjects, "actors": benchActors, "jobs": benchJobs,
	}
	if len(args) == 0 || subs[args[0]] == nil {
		fmt.Fprintln(os.Stderr, "Usage: fray bench tasks|objects|actors|jobs [flags]\n\nEach runs an in-process broker on file storage; 'fray bench NAME -h' lists its flags.")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return errUsage
	}
	return subs[args[0]](ctx, args[1:])
}

func benchTasks(ctx context.Context, args []string) error {
	fs := newFlags("bench", "tasks [flags]")
	n := fs.Int("n", 20000, "number of no-op tasks in the throughput phase")
	c := fs.Int("concurrency", 8, "worker task slots")
	payload := fs.Int("payload", 0, "argument size in bytes")
	seq := fs.Int("sequential", 0, "tasks in the one-at-a-time latency phase (default min(n, 2000))")
	base := fs.Bool("baseline", false, "also measure the bare JetStream path in the same run (prefetching, and pulling only for free slots) and print fray/baseline")
	asJSON := fs.Bool("json", false, "print one JSON line: tasks_per_s, p50_ms, p99_ms (+ baseline_tasks_per_s, ratio, baseline_free_slots_tasks_per_s, ratio_free_slots)")
	store := fs.String("store", "", "store directory (default: a temporary directory)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	if err := parse(fs, args); err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(*cpuprofile)
	if err != nil {
		return err
	}
	defer stopProfile()
	res, err := bench.Tasks(ctx, bench.TasksOptions{N: *n, Concurrency: *c, Payload: *payload, Sequential: *seq, Baseline: *base, StoreDir: *store})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(res)
	}
	fmt.Println(res)
	return nil
}

func benchObjects(ctx context.Context, args []string) error {
	fs := newFlags("bench", "objects [flags]")
	size := fs.String("size", "1g", "object size in bytes (suffixes k, m, g for KiB, MiB, GiB)")
	asJSON := fs.Bool("json", false, "print one JSON line: mb_per_s, peak_rss_mb, ...")
	store := fs.String("store", "", "store directory (default: a temporary directory)")
	if err := parse(fs, args); err != nil {
		return err
	}
	n, err := parseSize(*size)
	if err != nil {
		return fmt.Errorf("--size: %w", err)
	}
	dir := *store
	if dir == "" {
		if dir, err = os.MkdirTemp("", "fray-bench-objects-*"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	res, err := bench.Objects(ctx, n, dir)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(res)
	}
	fmt.Println(res)
	return nil
}

// parseSize reads "123", "64k", "10m", "1g" (binary units).
func parseSize(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for suffix, m := range map[string]int64{"k": 1 << 10, "m": 1 << 20, "g": 1 << 30} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSuffix(s, suffix), m
		}
	}
	var n int64
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n <= 0 || fmt.Sprint(n) != s {
		return 0, fmt.Errorf("%q: want a positive whole number of bytes, optionally with k, m or g", s)
	}
	return n * mult, nil
}

// startCPUProfile writes a CPU profile to path ("" profiles nothing) until
// the returned stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
