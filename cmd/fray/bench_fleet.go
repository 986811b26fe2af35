package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/frayhq/fray/internal/bench"
)

func init() {
	benchSummary["fleet"] = "Fleet scale: starts --workers simulated workers in this process, all at once, each wired as fray-worker " +
		"(its own client and NATS connection, the actor host and the job runner), against a fray-broker started as a child process " +
		"(or the broker at --nats, read through --monitor). Prints the time until the pool directory counts them all, the idle broker's " +
		"CPU (% of one core), RSS and messages and bytes per second over --idle, then --serial no-op tasks one at a time (latency p50, p99: what one user feels), " +
		"--tasks no-op tasks at once (tasks/s; their p50 and p99 are mostly the time to drain the burst) and " +
		"--jobs jobs one at a time (submit-to-RUNNING p50, p99), and the worker leases that expired during the run."
}

func benchFleet(ctx context.Context, args []string) error {
	fs := newBenchFlags("fleet")
	n := fs.Int("workers", 100, "number of simulated workers")
	conc := fs.Int("concurrency", 2, "task slots per worker")
	lease := fs.Duration("lease-ttl", 6*time.Second, "worker lease TTL (fray-worker's default is 6s)")
	idle := fs.Duration("idle", 30*time.Second, "idle measurement window, after registration and one lease period to settle")
	nSerial := fs.Int("serial", 200, "no-op tasks run one at a time after the idle window, for the latency one task sees (0 skips)")
	nTasks := fs.Int("tasks", 2000, "no-op tasks submitted at once after the one-at-a-time tasks, for throughput (0 skips)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of this process (the simulated workers and the measuring client) to this file")
	nJobs := fs.Int("jobs", 20, "jobs (/bin/true) submitted one at a time after the tasks (0 skips)")
	natsURL := fs.String("nats", "", "use the broker at this URL instead of starting one (its cluster must be provisioned with a fray-broker of this version running)")
	monitor := fs.String("monitor", "", "with --nats: the broker's monitoring URL (http://host:8222) for CPU, RSS and message rates")
	brokerBin := fs.String("broker-bin", "", "fray-broker binary to start (default: fray-broker beside this binary, else on PATH)")
	asJSON := fs.Bool("json", false, "print one JSON line: workers, register_s, workers_exited, idle_s, idle_broker_cpu_pct, broker_rss_mib, idle_in_msgs_per_s, idle_out_msgs_per_s, idle_in_kib_per_s, idle_out_kib_per_s, idle_sched_p99_ms, idle_sched_max_ms, idle_sim_cpu_pct, idle_sim_runq_wait_pct, idle_broker_runq_wait_pct, serial_tasks, serial_task_p50_ms, serial_task_p99_ms, burst_tasks, burst_tasks_per_s, burst_task_p50_ms, burst_task_p99_ms, jobs, job_start_p50_ms, job_start_p99_ms, leases_lost, leases_lost_idle, workers_lost, idle_renew_gap_max_ms, idle_renews_late")
	if _, err := parsePositional(fs, args, 0, 0, ""); err != nil {
		return err
	}
	switch {
	case *n < 1:
		return usagef(fs, "--workers %d: want at least 1", *n)
	case *conc < 1:
		return usagef(fs, "--concurrency %d: want at least 1 slot", *conc)
	case *lease < time.Second:
		return usagef(fs, "--lease-ttl %s: want at least 1s", *lease)
	case *idle < time.Second:
		return usagef(fs, "--idle %s: want at least 1s", *idle)
	case *nSerial < 0 || *nTasks < 0 || *nJobs < 0:
		return usagef(fs, "--serial, --tasks and --jobs: want 0 or more")
	case *monitor != "" && *natsURL == "":
		return usagef(fs, "--monitor needs --nats (the broker this bench starts is monitored already)")
	case *natsURL != "" && *monitor == "":
		return usagef(fs, "--nats needs --monitor: the broker's monitoring URL, for its CPU and message rates")
	}
	trueBin, err := exec.LookPath("true")
	if err != nil {
		return fmt.Errorf("bench fleet: the jobs run true(1): %w", err)
	}
	o := bench.FleetOptions{URL: *natsURL, Monitor: *monitor, Workers: *n, Concurrency: *conc, LeaseTTL: *lease, Idle: *idle,
		Serial: *nSerial, Tasks: *nTasks, Jobs: *nJobs, JobCommand: []string{trueBin},
		Progress: func(s string) { fmt.Fprintln(os.Stderr, "fray bench fleet:", s) }}
	if *natsURL == "" {
		stop, err := startBenchBroker(ctx, *brokerBin, &o)
		if err != nil {
			return err
		}
		defer stop()
	}
	stopProfile, err := startCPUProfile(*cpuprofile)
	if err != nil {
		return err
	}
	defer stopProfile()
	res, err := bench.Fleet(ctx, o)
	return printBench(res, err, *asJSON)
}

// startBenchBroker starts fray-broker as a child process on a temporary
// store, with monitoring, and points o at it.
func startBenchBroker(ctx context.Context, bin string, o *bench.FleetOptions) (stop func(), err error) {
	if bin == "" {
		if self, err := os.Executable(); err == nil {
			if p := filepath.Join(filepath.Dir(self), "fray-broker"); fileExists(p) {
				bin = p
			}
		}
	}
	if bin == "" {
		if bin, err = exec.LookPath("fray-broker"); err != nil {
			return nil, fmt.Errorf("bench fleet: no fray-broker beside this binary or on PATH (give --broker-bin, or --nats and --monitor): %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "fray-bench-fleet-")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	httpPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", "-1", "--http-port", strconv.Itoa(httpPort), "--store", filepath.Join(dir, "store"), "--log-level", "warn")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bench fleet: start %s: %w", bin, err)
	}
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		os.RemoveAll(dir)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if _, url, ok := strings.Cut(sc.Text(), "fray-broker ready url="); ok {
				url, _, _ = strings.Cut(url, " ")
				ready <- url
			}
		}
	}()
	select {
	case url := <-ready:
		o.URL, o.Monitor = url, fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	case <-time.After(60 * time.Second):
		stop()
		return nil, errors.New("bench fleet: fray-broker not ready within 60s")
	case <-ctx.Done():
		stop()
		return nil, ctx.Err()
	}
	pid := cmd.Process.Pid
	bench.BrokerCPUTime = func() (time.Duration, bool) { return procCPUTime(pid) }
	bench.BrokerPID = pid
	return stop, nil
}

// procCPUTime is a process's user+system CPU time from /proc (Linux).
func procCPUTime(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// Fields after the command (which may hold spaces) start after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks, true
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}
