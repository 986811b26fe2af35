package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/frayhq/fray/internal/bench"
)

func init() {
	register(command{name: "bench", summary: "measure fray on this machine: fray bench tasks|objects|actors|jobs|fleet", run: runBench})
}

// benchSummary describes each `fray bench NAME` for its -h.
var benchSummary = map[string]string{
	"tasks": "Task throughput and latency: an in-process broker on file storage and one in-process worker run --n no-op tasks " +
		"with --concurrency slots (tasks/s), then --sequential tasks one at a time (p50, p99 submit-to-result latency). " +
		"--runtime python runs the no-op task in Python (one runtime process per slot) with a Go producer. " +
		"--baseline also measures the bare JetStream path in the same run, three ways: prefetching 500 messages, " +
		"pulling only for free slots, and doing fray's work (a deduplication id per task, free slots, result stored before the ack). " +
		"--cluster 3 runs it all on three in-process brokers in a cluster, every stream with 3 replicas. " +
		"--producers P and --workers W instead run the real binaries as separate processes (one fray-broker, W fray-workers, P producers) " +
		"and report tasks/s, p50/p99 under load and the CPU of the broker, workers and producers for each (P, W).",
	"objects": "Object store throughput and memory: puts one --size object into an in-process broker on file storage and gets it back; " +
		"prints MB/s (put+get, and each) and this process's peak RSS.",
	"actors": "Actor call rate and latency: one client calls one actor (MaxConcurrency 1) hosted in this process through an in-process broker, " +
		"(with --runtime python: a Python actor in its runtime process, hosted by an in-process worker) " +
		"--calls calls with --concurrency in flight (calls/s, median of --rounds), then --sequential calls one at a time (p50, p99). " +
		"--baseline also measures bare NATS request/reply set up the same way.",
	"jobs": "Job start latency on the native backend: submits --n jobs (each runs `date +%s%N`, which prints when it started) one at a time to an in-process cluster with one worker; " +
		"prints submit-to-process-start p50 and p99 and submit-to-SUCCEEDED p50.",
}

func runBench(ctx context.Context, args []string) error {
	subs := map[string]func(context.Context, []string) error{
		"tasks": benchTasks, "objects": benchObjects, "actors": benchActors, "jobs": benchJobs, "fleet": benchFleet,
		bench.ProducerCommand: benchTasksProducer, // hidden: a producer process of bench tasks --producers
	}
	const usage = "Usage: fray bench tasks|objects|actors|jobs|fleet [flags]\n\nEach runs an in-process broker on file storage (fleet: a fray-broker child process); 'fray bench NAME -h' describes it and lists its flags."
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(os.Stderr, usage)
		return nil
	}
	if len(args) == 0 {
		fmt.Fprintf(os.Stderr, "fray bench: missing bench NAME (want tasks, objects, actors, jobs or fleet)\n\n%s\n", usage)
		return errUsage
	}
	if subs[args[0]] == nil {
		fmt.Fprintf(os.Stderr, "fray bench: unknown bench %s (want tasks, objects, actors, jobs or fleet)\n", args[0])
		return errUsage
	}
	return subs[args[0]](ctx, args[1:])
}

// newBenchFlags makes the FlagSet of `fray bench name`.
func newBenchFlags(name string) *flag.FlagSet {
	return newFlagsFor("bench "+name, "[flags]", benchSummary[name])
}

func benchTasks(ctx context.Context, args []string) error {
	fs := newBenchFlags("tasks")
	n := fs.Int("n", 20000, "number of no-op tasks in the throughput phase")
	c := fs.Int("concurrency", 8, "worker task slots")
	payload := fs.Int("payload", 0, "argument size in bytes")
	seq := fs.Int("sequential", 0, "tasks in the one-at-a-time latency phase (default min(n, 2000))")
	base := fs.Bool("baseline", false, "also measure the bare JetStream path in the same run (prefetching; pulling only for free slots; and also giving each task a deduplication id and storing each result before the ack, as fray does) and print fray's ratio to each")
	asJSON := fs.Bool("json", false, "print one JSON line: n, concurrency, brokers, replicas, tasks_per_s, cpu_us_per_task, allocs_per_task, alloc_bytes_per_task, broker_msgs_per_task, broker_bytes_per_task (messages the broker received and delivered per task, and their header and payload bytes), p50_ms, p99_ms "+
		"(with --baseline also baseline_tasks_per_s, ratio, baseline_free_slots_tasks_per_s, ratio_free_slots, baseline_same_work_tasks_per_s, ratio_same_work, each bare path's *_cpu_us_per_task, and the same-work path's *_allocs_per_task, *_alloc_bytes_per_task, *_broker_msgs_per_task and *_broker_bytes_per_task; with --rounds above 1 also rounds and ratio_same_work_rounds); "+
		"with --producers/--workers one line per pair: producers, workers, concurrency, in_flight, n, tasks_per_s, p50_ms, p99_ms, broker_cpu_cores, workers_cpu_cores, producers_cpu_cores, *_cpu_us_per_task, machine_cpus")
	store := fs.String("store", "", "store directory (default: a temporary directory)")
	cluster := fs.Int("cluster", 1, "brokers: 3 runs three in-process brokers joined in a cluster, every stream (the bare path's too) with 3 replicas, the producer on the first node and the worker on the last")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	memprofile := fs.String("memprofile", "", "write an allocation profile of the run to this file when it ends")
	rounds := fs.Int("rounds", 1, "with --baseline: measure fray's throughput phase and the same-work bare path this many times, alternating, in this process, "+
		"and report the medians (ratio_same_work: the median of the rounds' ratios, listed in ratio_same_work_rounds); steadier than separate runs on a machine whose load drifts")
	rt := addBenchRuntime(fs, "task")
	procs := addBenchProcs(fs)
	if _, err := parsePositional(fs, args, 0, 0, ""); err != nil {
		return err
	}
	pyOpts, err := rt.options(fs)
	if err != nil {
		return err
	}
	switch {
	case *n < 1:
		return usagef(fs, "--n %d: want at least 1 task", *n)
	case *c < 1:
		return usagef(fs, "--concurrency %d: want at least 1 slot", *c)
	case *payload < 0:
		return usagef(fs, "--payload %d: want 0 or more bytes", *payload)
	case *seq < 0:
		return usagef(fs, "--sequential %d: want 0 or more tasks (0: min(n, 2000))", *seq)
	case bench.CheckCluster(*cluster) != nil:
		return usagef(fs, "--cluster %d: want 3 (a replicated cluster) or 1 (one broker)", *cluster)
	case *rounds < 1:
		return usagef(fs, "--rounds %d: want at least 1", *rounds)
	case *rounds > 1 && !*base:
		return usagef(fs, "--rounds %d: rounds pair fray with the same-work bare path: add --baseline", *rounds)
	}
	if procs.selected() {
		if *base || *rounds != 1 || *cluster != 1 || pyOpts != nil || *payload != 0 || *store != "" {
			return usagef(fs, "--producers and --workers run separate processes on one broker; --baseline, --rounds, --cluster, --runtime python, --payload and --store apply to the in-process bench only")
		}
		o, err := procs.options(fs, *n, *c)
		if err != nil {
			return err
		}
		return runBenchProcs(ctx, o, *asJSON)
	}
	// The bench's worker logs to the default logger: only its warnings
	// belong beside the results.
	slog.SetLogLoggerLevel(slog.LevelWarn)
	stopProfile, err := startCPUProfile(*cpuprofile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if *memprofile != "" {
		defer writeMemProfile(*memprofile)
	}
	res, err := bench.Tasks(ctx, bench.TasksOptions{N: *n, Concurrency: *c, Payload: *payload, Sequential: *seq, Baseline: *base, Rounds: *rounds, Cluster: *cluster, StoreDir: *store, Python: pyOpts})
	return printBench(res, err, *asJSON)
}

func benchObjects(ctx context.Context, args []string) error {
	fs := newBenchFlags("objects")
	size := fs.String("size", "1g", "object size in bytes (suffixes k, m, g for KiB, MiB, GiB; fractions allowed, e.g. 1.5g)")
	asJSON := fs.Bool("json", false, "print one JSON line: bytes, mb_per_s, put_mb_per_s, get_mb_per_s, peak_rss_mb, put_peak_rss_mb, get_peak_rss_mb, base_rss_mb, peak_rss_reset, go_heap_live_mb, go_heap_goal_mb, digest")
	store := fs.String("store", "", "store directory (default: a temporary directory)")
	if _, err := parsePositional(fs, args, 0, 0, ""); err != nil {
		return err
	}
	n, err := parseSize(*size)
	if err != nil {
		return usagef(fs, "--size %q: %v", *size, err)
	}
	dir := *store
	if dir == "" {
		if dir, err = os.MkdirTemp("", "fray-bench-objects-*"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	res, err := bench.Objects(ctx, n, dir)
	return printBench(res, err, *asJSON)
}

// parseSize reads "123", "64k", "10m", "1g", "1.5g" (binary units).
func parseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	if n := len(t); n > 0 {
		if m, ok := map[byte]float64{'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30}[t[n-1]]; ok {
			t, mult = t[:n-1], m
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f*mult < 1 || f*mult > 1<<50 {
		return 0, errors.New("want a positive number of bytes, optionally with k, m or g, e.g. 512m or 1.5g")
	}
	return int64(f * mult), nil
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

// writeMemProfile writes the allocation profile (every allocation since
// the process started) to path.
func writeMemProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fray bench: memprofile: %v\n", err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		fmt.Fprintf(os.Stderr, "fray bench: memprofile: %v\n", err)
	}
}
