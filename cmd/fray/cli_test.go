package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/cluster"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/tasks"
)

// stdioMu serializes tests that swap os.Stdout and os.Stderr.
var stdioMu sync.Mutex

// cliRun is one `fray ...` running in this process, its stdout and stderr
// going to files.
type cliRun struct {
	outPath, errPath string
	done             chan struct{}
	code             int
}

func (r *cliRun) Stdout() string { b, _ := os.ReadFile(r.outPath); return string(b) }
func (r *cliRun) Stderr() string { b, _ := os.ReadFile(r.errPath); return string(b) }

// startCLI runs runMain(ctx, args) in a goroutine with os.Stdout and
// os.Stderr redirected to files; they are restored when it returns.
func startCLI(t *testing.T, ctx context.Context, args ...string) *cliRun {
	t.Helper()
	dir := t.TempDir()
	r := &cliRun{outPath: filepath.Join(dir, "stdout"), errPath: filepath.Join(dir, "stderr"), done: make(chan struct{})}
	out, err := os.Create(r.outPath)
	if err != nil {
		t.Fatal(err)
	}
	errf, err := os.Create(r.errPath)
	if err != nil {
		t.Fatal(err)
	}
	stdioMu.Lock()
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = out, errf
	go func() {
		defer close(r.done)
		defer func() {
			os.Stdout, os.Stderr = oldOut, oldErr
			stdioMu.Unlock()
			out.Close()
			errf.Close()
		}()
		r.code = runMain(ctx, args)
	}()
	return r
}

// cli runs `fray args...` to completion.
func cli(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx := frayt.Context(t, 2*time.Minute)
	r := startCLI(t, ctx, args...)
	select {
	case <-r.done:
	case <-ctx.Done():
		t.Fatalf("fray %s: still running; stderr:\n%s", strings.Join(args, " "), r.Stderr())
	}
	return r.Stdout(), r.Stderr(), r.code
}

func TestCommandLineMistakesExitTwoWithAOneLineReason(t *testing.T) {
	t.Setenv("FRAY_CLUSTER_SPEC", "") // nothing may get as far as connecting
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"result", ""}, `fray result: empty argument where a future ID`},
		{[]string{"stop", "/default/a", " "}, `fray stop: empty argument where a job ID`},
		{[]string{"logs", ""}, `fray logs: empty argument where a job ID`},
		{[]string{"jobs", "status", ""}, `fray jobs status: empty argument where a job ID`},
		{[]string{"result", "nodot"}, `fray result: bad future id "nodot"`},
		{[]string{"result", "a.b", "extra"}, `fray result: unexpected argument "extra"`},
		{[]string{"result"}, "fray result: missing future ID"},
		{[]string{"result", "--wait", "-1s", "a.b"}, "--wait -1s"},
		{[]string{"up", "extra", "--port", "15233"}, `fray up: unexpected argument "extra"`},
		{[]string{"run"}, "fray run: missing function NAME"},
		{[]string{"run", "--wait"}, "fray run: missing function NAME"},
		{[]string{"run", "fray.echo", "extra"}, `fray run: unexpected argument "extra"`},
		{[]string{"run", "a b"}, `fray run: bad function name "a b"`},
		{[]string{"jobs", "hello"}, `fray jobs: unexpected argument "hello"`},
		{[]string{"jobs", "ls", "hello"}, `fray jobs: unexpected argument "hello"`},
		{[]string{"jobs", "status"}, "fray jobs status: missing job ID"},
		{[]string{"jobs", "status", "a", "b"}, `fray jobs status: unexpected argument "b"`},
		{[]string{"workers", "x"}, `fray workers: unexpected argument "x"`},
		{[]string{"actors", "x"}, `fray actors: unexpected argument "x"`},
		{[]string{"logs"}, "fray logs: missing job ID"},
		{[]string{"logs", "a", "b"}, `fray logs: unexpected argument "b"`},
		{[]string{"logs", "--tail", "-5", "job"}, "fray logs: --tail -5"},
		{[]string{"stop"}, "fray stop: missing job ID"},
		{[]string{"stop", "--timeout", "0s", "job"}, "fray stop: --timeout 0s: want a positive duration"},
		{[]string{"bench"}, "fray bench: missing bench NAME"},
		{[]string{"bench", "foo"}, "fray bench: unknown bench foo (want tasks, objects, actors, jobs or fleet)"},
		{[]string{"bench", "tasks", "extra"}, `fray bench tasks: unexpected argument "extra"`},
		{[]string{"bench", "jobs", "extra"}, `fray bench jobs: unexpected argument "extra"`},
		{[]string{"bench", "tasks", "--runtime", "ruby"}, `fray bench tasks: --runtime "ruby": want go or python`},
		{[]string{"bench", "actors", "--runtime", "python", "--python", "/no/such/python"}, `fray bench actors: --python "/no/such/python"`},
		{[]string{"bench", "objects", "--size", "lots"}, `fray bench objects: --size "lots"`},
		{[]string{"bench", "tasks", "--cluster", "2"}, "fray bench tasks: --cluster 2: want 3"},
		{[]string{"bench", "tasks", "--producers", "0"}, `fray bench tasks: --producers "0": "0" is not a count of processes`},
		{[]string{"bench", "tasks", "--workers", "1,x"}, `fray bench tasks: --workers "1,x": "x" is not a count`},
		{[]string{"bench", "tasks", "--workers", "1,,2"}, `fray bench tasks: --workers "1,,2"`},
		{[]string{"bench", "tasks", "--producers", "2", "--n", "1"}, "fray bench tasks: n 1 is fewer than 2 producers"},
		{[]string{"bench", "tasks", "--producers", "1", "--in-flight", "-1"}, "fray bench tasks: --in-flight -1"},
		{[]string{"bench", "tasks", "--producers", "1", "--baseline"}, "apply to the in-process bench only"},
		{[]string{"bench", "tasks", "--workers", "2", "--cluster", "3"}, "apply to the in-process bench only"},
		{[]string{"bench", "tasks", "--producers", "1", "--bin-dir", "/no/such/dir"}, "--bin-dir /no/such/dir: no fray-broker there"},
		{[]string{"submit", "--replicas", "0", "--", "true"}, "fray submit: --replicas 0: want at least 1"},
		{[]string{"submit", "--slices", "2", "--", "true"}, "fray submit: --slices needs --tpu"},
		{[]string{"submit", "--ram", "lots", "--", "true"}, `fray submit: --ram "lots"`},
		{[]string{"submit", "--disk", "1x", "--", "true"}, `fray submit: --disk "1x"`},
	}
	for _, c := range cases {
		_, stderr, code := cli(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("fray %q: exit %d, stderr %q; want exit 2 saying %q", c.args, code, stderr, c.want)
		}
	}
}

func TestBenchHelpDescribesThatBench(t *testing.T) {
	for name, want := range map[string][]string{
		"tasks": {"Task throughput", "p99_ms", "baseline_free_slots_tasks_per_s", "baseline_same_work_tasks_per_s", "-sequential", "-store", "-cpuprofile",
			"-memprofile", "allocs_per_task", "-cluster", "-producers", "-workers", "-in-flight", "broker_cpu_cores"},
		"objects": {"Object store throughput", "peak_rss_mb", "-store", "1.5g"},
		"actors":  {"Actor call rate", "p99_ms", "baseline_p50_ms", "-store", "-cpuprofile"},
		"jobs":    {"Job start latency", "start_p99_ms", "-n", "-store"},
	} {
		_, stderr, code := cli(t, "bench", name, "-h")
		for _, w := range want {
			if code != 0 || !strings.Contains(stderr, w) {
				t.Errorf("fray bench %s -h: exit %d, missing %q in:\n%s", name, code, w, stderr)
			}
		}
	}
}

func TestSubmitHelpShowsTheInFormOfConstraint(t *testing.T) {
	_, stderr, _ := cli(t, "submit", "-h")
	if !strings.Contains(stderr, "KEY=V1,V2") {
		t.Fatalf("submit -h does not mention KEY=V1,V2:\n%s", stderr)
	}
}

func TestBenchSizeAcceptsFractions(t *testing.T) {
	for in, want := range map[string]int64{"1.5g": 3 << 29, "64k": 64 << 10, "123": 123, "0.5K": 512} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"lots", "0", "-1m", "", "g"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestLocalSpecIsExplainedRatherThanCalledMissing(t *testing.T) {
	t.Setenv("FRAY_CLUSTER_SPEC", "local")
	_, stderr, code := cli(t, "run", "fray.echo")
	if code != 1 || strings.Contains(stderr, "no cluster given") || !strings.Contains(stderr, "in-process") || !strings.Contains(stderr, "fray up") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestTaskFailureDoesNotShowGoErrorTypes(t *testing.T) {
	re := &tasks.RemoteError{TaskID: "t1", Kind: tasks.KindHandler, Fn: "sh", Message: "command exited 1", Type: "*worker.ExecError", Worker: "w1", Attempt: 1}
	if msg := cliError(re).Error(); strings.Contains(msg, "*worker.ExecError") || !strings.Contains(msg, "command exited 1") {
		t.Fatalf("%q", msg)
	}
	panicked := &tasks.RemoteError{TaskID: "t1", Kind: tasks.KindPanic, Fn: "f", Message: "boom", Type: tasks.KindPanic}
	if msg := cliError(panicked).Error(); !strings.Contains(msg, "panic: boom") {
		t.Fatalf("a panic lost its name: %q", msg)
	}
}

func TestResultWaitWithoutAResultExitsThreeSayingSo(t *testing.T) {
	srv := frayt.Server(t)
	_, stderr, code := cli(t, "result", "--wait", "200ms", "--nats", srv.ClientURL(), "owner1.task1")
	if code != 3 || !strings.Contains(stderr, "no result for owner1.task1 within 200ms") || strings.Contains(stderr, "deadline") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestRunWaitSaysWhenThePoolHasNoLiveWorkerAndKeepsReporting(t *testing.T) {
	srv := frayt.Server(t)
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(frayt.Context(t, time.Minute))
	defer cancel()
	r := startCLI(t, ctx, "run", "--wait", "--pool", "gpu", "fray.echo", "--arg", "1", "--nats", srv.ClientURL())
	frayt.Eventually(t, 30*time.Second, "fray run reports the empty pool and its progress", func() bool {
		s := r.Stderr()
		return strings.Contains(s, "no live worker serves pool gpu yet; waiting (Ctrl-C to stop)") && strings.Contains(s, "still waiting for ")
	})
	cancel() // as Ctrl-C does
	<-r.done
	if n := strings.Count(r.Stderr(), "no live worker"); n != 1 {
		t.Fatalf("the empty pool was reported %d times:\n%s", n, r.Stderr())
	}
	if r.code != 130 || strings.Contains(r.Stderr(), "context canceled") {
		t.Fatalf("interrupted wait: exit %d (want 130, quietly), stderr:\n%s", r.code, r.Stderr())
	}
}

func TestSubmitNoAdoptSaysHowToAdopt(t *testing.T) {
	url := frayt.Server(t).ClientURL() // no dispatcher: the job stays PENDING, and live
	if _, stderr, code := cli(t, "submit", "--nats", url, "--name", "twice", "--", "true"); code != 0 || strings.Contains(stderr, "attached") {
		t.Fatalf("first submit: exit %d: %s", code, stderr)
	}
	if _, stderr, code := cli(t, "submit", "--nats", url, "--name", "twice", "--", "false"); code != 0 || !strings.Contains(stderr, "already live: attached to it; it runs its own command") {
		t.Fatalf("second submit of a live name: exit %d, stderr %q; want it to say it attached", code, stderr)
	}
	_, stderr, code := cli(t, "submit", "--nats", url, "--name", "twice", "--no-adopt", "--", "true")
	if code != 1 || !strings.Contains(stderr, "drop --no-adopt") || strings.Contains(stderr, "AdoptExisting") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestCommandsAgainstALocalCluster(t *testing.T) {
	l, err := cluster.StartLocal(frayt.Context(t, time.Minute), cluster.LocalOptions{Broker: broker.Options{StoreDir: t.TempDir()}, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop() })
	url := l.URL()

	t.Run("FlagsMayPrecedeTheFunctionAndTheID", func(t *testing.T) {
		out, stderr, code := cli(t, "run", "--wait", "--nats", url, "fray.echo", "--arg", "1")
		if code != 0 || strings.TrimSpace(out) != "1" {
			t.Fatalf("run --wait NAME: exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		out, stderr, code = cli(t, "run", "--nats", url, "fray.echo", "--arg", `"x"`)
		if code != 0 {
			t.Fatalf("run: exit %d, stderr %q", code, stderr)
		}
		id := strings.TrimSpace(out)
		out, stderr, code = cli(t, "result", "--wait", "30s", "--nats", url, id)
		if code != 0 || strings.TrimSpace(out) != `"x"` {
			t.Fatalf("result --wait D ID: exit %d, stdout %q, stderr %q", code, out, stderr)
		}
	})

	t.Run("LogsFollowOfAFailedJobPrintsItsLogsAndExitsOne", func(t *testing.T) {
		if _, stderr, code := cli(t, "submit", "--nats", url, "--name", "fails", "--", "sh", "-c", "echo before-failing; exit 3"); code != 0 {
			t.Fatalf("submit: exit %d: %s", code, stderr)
		}
		out, stderr, code := cli(t, "logs", "-f", "--nats", url, "fails")
		if code != 1 || !strings.Contains(out, "before-failing") || !strings.Contains(stderr, "FAILED") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, stderr)
		}
	})

	t.Run("StopTakesSeveralJobs", func(t *testing.T) {
		for _, name := range []string{"sleeper-a", "sleeper-b"} {
			if _, stderr, code := cli(t, "submit", "--nats", url, "--name", name, "--cpu", "0.1", "--", "sleep", "60"); code != 0 {
				t.Fatalf("submit %s: exit %d: %s", name, code, stderr)
			}
		}
		out, stderr, code := cli(t, "stop", "--nats", url, "sleeper-a", "sleeper-b", "--timeout", "30s")
		if code != 0 || !strings.Contains(out, "/default/sleeper-a STOPPED") || !strings.Contains(out, "/default/sleeper-b STOPPED") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, stderr)
		}
	})
}
