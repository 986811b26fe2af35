package integration

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/tasks"
)

func TestPythonWorkerServesRegisteredFunctionsBesideGoHandlers(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	w := startPythonWorker(t, c, "py-1", "--concurrency", "2")
	ctx := frayt.Context(t, time.Minute)

	got, err := fray.Run[int, int](ctx, c, "rt.double", 21).Get(ctx)
	if err != nil || got != 42 {
		t.Fatalf("rt.double(21) = %d, %v", got, err)
	}
	echo, err := fray.Run[string, string](ctx, c, "fray.echo", "go still").Get(ctx)
	if err != nil || echo != "go still" {
		t.Fatalf("fray.echo beside Python: %q, %v", echo, err)
	}
	// The runtime's environment names the worker's cluster.
	spec, err := fray.Run[string, string](ctx, c, "rt.env", "FRAY_CLUSTER_SPEC").Get(ctx)
	if err != nil || spec != c.URL() {
		t.Fatalf("FRAY_CLUSTER_SPEC in the runtime = %q, %v; want %q", spec, err, c.URL())
	}
	// An unknown function's error lists the Python functions too.
	err = c.Run(ctx, "rt.nope", 1).Get(ctx, nil)
	if !errors.Is(err, tasks.ErrUnknownFunction) || !strings.Contains(err.Error(), "rt.double") || !strings.Contains(err.Error(), "py.call") {
		t.Fatalf("unknown function: %v; want ErrUnknownFunction listing rt.double and py.call", err)
	}
	// A Python exception reaches a Go caller with its type, language and traceback.
	err = c.Run(ctx, "rt.fail", "bad shard").Get(ctx, nil)
	var re *tasks.RemoteError
	if !errors.As(err, &re) || re.Type != "builtins.ValueError" || re.Lang != "python" || re.Message != "bad shard" ||
		!strings.Contains(re.Traceback, "raise ValueError(msg)") || len(re.Exc) == 0 {
		t.Fatalf("python error: %+v (%v)", re, err)
	}
	// What a task prints reaches the worker's log with the task id.
	f := c.Run(ctx, "rt.print", []string{"printed by python"})
	if err := f.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the printed line in the worker's log", func() bool {
		for _, l := range strings.Split(w.Output(), "\n") {
			if strings.Contains(l, `line="printed by python"`) && strings.Contains(l, "task="+f.TaskID()) {
				return true
			}
		}
		return false
	})
}

func TestPythonWorkerRunsPickledCallables(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	startPythonWorker(t, c, "py-1")
	ctx := frayt.Context(t, time.Minute)
	ref, err := c.Put(ctx, 6)
	if err != nil {
		t.Fatal(err)
	}
	refJSON, _ := json.Marshal(ref)
	// (lambda a, b: a * b + offset, (Ref to 6,), {"b": 7}), pickled by
	// value: what the Python client's run(fn, ...) sends.
	arg := pyBytes(t, `
import json, sys, cbor2, cloudpickle
from frayhq import _codec
r = json.loads(sys.argv[1])
ref = _codec.Ref(bucket=r["bucket"], digest=r["digest"], size=r["size"])
offset = 0
fn = lambda a, b: {"product": a * b + offset, "kind": "pickled"}
sys.stdout.buffer.write(cbor2.dumps(cbor2.CBORTag(_codec.PICKLE_TAG, cloudpickle.dumps((fn, (ref,), {"b": 7})))))
`, string(refJSON))
	var got map[string]any
	if err := c.Run(ctx, "py.call", objects.RawMessage(arg)).Get(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if got["product"] != uint64(42) || got["kind"] != "pickled" {
		t.Fatalf("py.call = %v; want product 42", got)
	}
}

func TestPythonResultsOnlyPythonCanReadAreErrorsNamingTheTag(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	startPythonWorker(t, c, "py-1")
	ctx := frayt.Context(t, time.Minute)
	// {"plain": 1, "set": {1, 2}}: the set travels pickled.
	var got map[string]any
	err := c.Run(ctx, "rt.pickled", nil).Get(ctx, &got)
	if !errors.Is(err, objects.ErrPythonValue) || !strings.Contains(err.Error(), "CBOR tag 1718772089 (a pickled Python value)") {
		t.Fatalf("Get of a pickled result: %v; want objects.ErrPythonValue naming the tag", err)
	}
	// An unpicklable result is an error naming its type.
	err = c.Run(ctx, "rt.lock", nil).Get(ctx, nil)
	var re *tasks.RemoteError
	if !errors.As(err, &re) || re.Type != "frayhq.errors.PickleFailed" || !strings.Contains(re.Message, "_thread.lock") {
		t.Fatalf("unpicklable result: %v; want PickleFailed naming _thread.lock", err)
	}
}

func TestPythonRuntimeKilledMidTaskIsRetriedOnItsReplacement(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	startPythonWorker(t, c, "py-1", "--concurrency", "1")
	ctx := frayt.Context(t, 2*time.Minute)
	file := filepath.Join(t.TempDir(), "pid")
	f := c.Run(ctx, "rt.pid_then_sleep", map[string]any{"file": file}, tasks.Retries(1, 10*time.Millisecond))
	pid := waitPidFile(t, file)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var second int
	if err := f.Get(ctx, &second); err != nil {
		t.Fatalf("after the kill: %v; want the retry to succeed", err)
	}
	res, err := f.Result(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second == pid || second == 0 || res.Attempt != 2 {
		t.Fatalf("retry ran in pid %d (attempt %d); the killed process was %d", second, res.Attempt, pid)
	}
	// Without retries the attempt fails as runtime_crashed.
	file2 := filepath.Join(t.TempDir(), "pid")
	f = c.Run(ctx, "rt.pid_then_sleep", map[string]any{"file": file2})
	pid = waitPidFile(t, file2)
	syscall.Kill(pid, syscall.SIGKILL)
	err = f.Get(ctx, nil)
	var re *tasks.RemoteError
	if !errors.Is(err, tasks.ErrRuntimeCrashed) || !errors.As(err, &re) || re.Kind != tasks.KindRuntimeCrashed || !strings.Contains(re.Message, "signal 9") {
		t.Fatalf("no retries: %v; want kind runtime_crashed naming signal 9", err)
	}
}

func waitPidFile(t *testing.T, file string) int {
	t.Helper()
	var pid int
	waitFor(t, 60*time.Second, "the task wrote its pid to "+file, func() bool {
		b, err := os.ReadFile(file)
		pid, _ = strconv.Atoi(string(b))
		return err == nil && pid > 0
	})
	return pid
}

func TestPythonTaskTimeoutKillsItsProcess(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	startPythonWorker(t, c, "py-1", "--concurrency", "1")
	ctx := frayt.Context(t, 2*time.Minute)
	file := filepath.Join(t.TempDir(), "pid")
	f := c.Run(ctx, "rt.pid_then_sleep", map[string]any{"file": file, "secs": 600}, tasks.Timeout(2*time.Second))
	pid := waitPidFile(t, file)
	err := f.Get(ctx, nil)
	if !errors.Is(err, tasks.ErrTimeout) {
		t.Fatalf("err %v; want ErrTimeout", err)
	}
	waitFor(t, 10*time.Second, "the timed-out task's process is gone", func() bool { return !pidAlive(pid) })
	// Its replacement serves the next task.
	got, err := fray.Run[int, int](ctx, c, "rt.double", 4).Get(ctx)
	if err != nil || got != 8 {
		t.Fatalf("after the timeout: %d, %v", got, err)
	}
}

func TestPythonWorkerDrainHandsRunningTasksBack(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	a := startPythonWorker(t, c, "py-a", "--concurrency", "1", "--drain-timeout", "1s")
	ctx := frayt.Context(t, 2*time.Minute)
	file := filepath.Join(t.TempDir(), "pid")
	f := c.Run(ctx, "rt.pid_then_sleep", map[string]any{"file": file, "secs": 600})
	pid := waitPidFile(t, file)
	startPythonWorker(t, c, "py-b", "--concurrency", "1")
	if err := a.Term(30 * time.Second); err != nil {
		t.Fatalf("drained worker exited with %v\n%s", err, a.Output())
	}
	if pidAlive(pid) {
		t.Fatalf("runtime process %d outlived its worker", pid)
	}
	var got int
	if err := f.Get(ctx, &got); err != nil {
		t.Fatal(err)
	}
	res, _ := f.Result(ctx)
	if res.Worker != "py-b" || got == pid {
		t.Fatalf("handed-back task ran on %s in pid %d; want py-b, not the killed %d", res.Worker, got, pid)
	}
}

func TestPythonImportErrorStopsTheWorkerWithTheTraceback(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	args, env := pythonArgs(t, "badimport")
	p := start(t, "fray-worker", env, append([]string{"--nats", c.URL(), "--id", "py-bad"}, args...)...)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("worker still running with a failing import:\n%s", p.Output())
	}
	var xe interface{ ExitCode() int }
	if !errors.As(p.err, &xe) || xe.ExitCode() != 2 {
		t.Fatalf("exit %v; want status 2\n%s", p.err, p.Output())
	}
	out := p.Output()
	for _, want := range []string{"import badimport", "fixture import failure", "Traceback", "badimport.py", "_helper()"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, w := range c.Workers() {
		if w.ID == "py-bad" {
			t.Fatal("the worker registered before its imports succeeded")
		}
	}
	// A bad interpreter is a usage error, also exit 2.
	bad := start(t, "fray-worker", env, "--nats", c.URL(), "--id", "py-bad2", "--python", filepath.Join(t.TempDir(), "nopython"))
	<-bad.done
	if !errors.As(bad.err, &xe) || xe.ExitCode() != 2 || !strings.Contains(bad.Output(), "nopython") {
		t.Fatalf("bad interpreter: exit %v; want status 2 naming it\n%s", bad.err, bad.Output())
	}
}

func TestPythonProcessesDieWithTheirWorker(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	w := startPythonWorker(t, c, "py-1", "--concurrency", "2")
	ctx := frayt.Context(t, 2*time.Minute)
	h, err := c.CreateActor(ctx, "rt.Counter", "doomed", 0)
	if err != nil {
		t.Fatal(err)
	}
	actorPid, err := fray.Call[int](ctx, h, "getpid", nil)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "pid")
	c.Run(ctx, "rt.pid_then_sleep", map[string]any{"file": file, "secs": 600})
	taskPid := waitPidFile(t, file)
	// SIGKILL the worker alone (its runtimes are in process groups of
	// their own): the reaper takes them down.
	if err := syscall.Kill(w.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the task and actor processes die with their worker", func() bool {
		return !pidAlive(taskPid) && !pidAlive(actorPid)
	})
}
