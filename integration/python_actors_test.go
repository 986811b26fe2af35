package integration

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/tasks"
	"github.com/frayhq/fray/worker"
)

func TestPythonActorKeepsStateAcrossCalls(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	startPythonWorker(t, c, "py-1")
	ctx := frayt.Context(t, time.Minute)
	h, err := c.CreateActor(ctx, "rt.Counter", "counter", 10)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{15, 16, 26} {
		d := []int{5, 1, 10}[i]
		got, err := fray.Call[int](ctx, h, "add", d)
		if err != nil || got != want {
			t.Fatalf("add(%d) = %d, %v; want %d", d, got, err, want)
		}
	}
	// Calls run in order, one at a time.
	futs := make([]*actors.Future, 50)
	for i := range futs {
		futs[i] = h.Call(ctx, "add", 1)
	}
	for i, f := range futs {
		var got int
		if err := f.Get(ctx, &got); err != nil || got != 27+i {
			t.Fatalf("pipelined call %d = %d, %v; want %d", i, got, err, 27+i)
		}
	}
	who, err := fray.Call[map[string]any](ctx, h, "whoami", nil)
	if err != nil || who["name"] != "counter" || who["epoch"] != uint64(1) || who["max_concurrency"] != uint64(1) ||
		who["handle"] != who["namespace"].(string)+"/counter" {
		t.Fatalf("current_actor() in a method = %v, %v", who, err)
	}
	// A Python exception reaches the caller; the actor survives it.
	_, err = fray.Call[int](ctx, h, "boom", "missing-key")
	var re *actors.RemoteError
	if !errors.As(err, &re) || re.Type != "builtins.KeyError" || re.Lang != "python" || !strings.Contains(re.Traceback, "raise KeyError(msg)") || len(re.Exc) == 0 {
		t.Fatalf("boom: %+v (%v)", re, err)
	}
	if _, err := fray.Call[int](ctx, h, "nope", nil); !errors.Is(err, actors.ErrNoSuchMethod) || !strings.Contains(err.Error(), "getpid") {
		t.Fatalf("unknown method: %v; want ErrNoSuchMethod listing the methods", err)
	}
	// A long-running operation.
	op, err := h.Submit(ctx, "slow", 0.2)
	if err != nil {
		t.Fatal(err)
	}
	var slept float64
	if err := op.Wait(ctx, &slept); err != nil || slept != 0.2 {
		t.Fatalf("operation: %v, %v", slept, err)
	}
	if got, err := fray.Call[int](ctx, h, "get", nil); err != nil || got != 76 {
		t.Fatalf("get = %d, %v; want 76", got, err)
	}
}

func TestPythonActorRunsCallsAtOnceUpToMaxConcurrency(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	startPythonWorker(t, c, "py-1")
	ctx := frayt.Context(t, time.Minute)
	// Gate(3): wait() returns true only once three calls wait at once.
	h, err := c.CreateActor(ctx, "rt.Gate", "gate", 3, actors.MaxConcurrency(3))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	oks := make([]bool, 3)
	errs := make([]error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			oks[i], errs[i] = fray.Call[bool](ctx, h, "wait", 20.0)
		}()
	}
	wg.Wait()
	for i := range 3 {
		if errs[i] != nil || !oks[i] {
			t.Fatalf("call %d: %v, %v; want all three through the gate together", i, oks[i], errs[i])
		}
	}
	// With MaxConcurrency 1 the same calls cannot meet: each times out.
	h1, err := c.CreateActor(ctx, "rt.Gate", "serial-gate", 2)
	if err != nil {
		t.Fatal(err)
	}
	f1, f2 := h1.Call(ctx, "wait", 0.3), h1.Call(ctx, "wait", 0.3)
	var ok1, ok2 bool
	if err := f1.Get(ctx, &ok1); err != nil || ok1 {
		t.Fatalf("serial first call: %v, %v; want false (alone at the gate)", ok1, err)
	}
	if err := f2.Get(ctx, &ok2); err != nil || !ok2 {
		t.Fatalf("serial second call: %v, %v; want true (the first one counted)", ok2, err)
	}
}

func TestPythonActorProcessDeathFailsTheActorAndItRestarts(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	startPythonWorker(t, c, "py-1")
	ctx := frayt.Context(t, 2*time.Minute)
	h, err := c.CreateActor(ctx, "rt.Counter", "fragile", 0, actors.MaxRestarts(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fray.Call[int](ctx, h, "add", 5); err != nil {
		t.Fatal(err)
	}
	pid, err := fray.Call[int](ctx, h, "getpid", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The process dies mid-call (os._exit): the caller gets ErrActorUnavailable.
	if _, err := fray.Call[any](ctx, h, "die", nil); !errors.Is(err, actors.ErrActorUnavailable) {
		t.Fatalf("call that killed the process: %v; want ErrActorUnavailable", err)
	}
	// The supervisor restarts it: a new process, state from the constructor.
	waitFor(t, 60*time.Second, "the actor restarted", func() bool {
		rec, err := h.Record(ctx)
		return err == nil && rec.Epoch == 2 && rec.State == actors.StateReady
	})
	got, err := fray.Call[int](ctx, h, "get", nil)
	if err != nil || got != 0 {
		t.Fatalf("get after the restart = %d, %v; want 0", got, err)
	}
	pid2, err := fray.Call[int](ctx, h, "getpid", nil)
	if err != nil || pid2 == pid {
		t.Fatalf("restarted in pid %d (%v); the dead one was %d", pid2, err, pid)
	}
	if pidAlive(pid) {
		t.Fatalf("dead actor's process %d still runs", pid)
	}
	// Killed from outside while idle: the actor fails and restarts too.
	if err := syscall.Kill(pid2, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the actor restarted after SIGKILL", func() bool {
		rec, err := h.Record(ctx)
		return err == nil && rec.Epoch == 3 && rec.State == actors.StateReady
	})
	// With a retry a call lost with its process runs again on the next epoch.
	hr, err := c.CreateActor(ctx, "rt.Counter", "retried", 0, actors.MaxRestarts(1), actors.MaxTaskRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	_, err = fray.Call[any](ctx, hr, "die", nil)
	if !errors.Is(err, actors.ErrActorUnavailable) {
		// Retried once on epoch 2, where it killed the process again, and
		// no restart is left: the caller learns the actor is gone.
		t.Fatalf("retried die: %v; want ErrActorUnavailable once the retry is spent", err)
	}
	rec, err := hr.Record(ctx)
	if err != nil || rec.Epoch != 2 {
		t.Fatalf("record %+v, %v; want the call retried on epoch 2", rec, err)
	}
}

func TestPickledPythonClassServesAsAnActor(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	startPythonWorker(t, c, "py-1")
	ctx := frayt.Context(t, time.Minute)
	// (class, args, kwargs) pickled by value: what the Python client's
	// create_actor(SomeClass, ...) sends.
	arg := pyBytes(t, `
import sys, cbor2, cloudpickle
from frayhq import _codec
class Acc:
    def __init__(self, start, *, step):
        self.total, self.step = start, step
    def push(self, x):
        self.total += x * self.step
        return self.total
sys.stdout.buffer.write(cbor2.dumps(cbor2.CBORTag(_codec.PICKLE_TAG, cloudpickle.dumps((Acc, (100,), {"step": 2})))))
`)
	h, err := c.CreateActor(ctx, "py.object", "acc", objects.RawMessage(arg))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := fray.Call[int](ctx, h, "push", 5); err != nil || got != 110 {
		t.Fatalf("push(5) = %d, %v; want 110", got, err)
	}
}

func TestGoTaskCallsPythonActor(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	startPythonWorker(t, c, "py-1")
	ctx := frayt.Context(t, time.Minute)
	if _, err := c.CreateActor(ctx, "rt.Counter", "shared", 40); err != nil {
		t.Fatal(err)
	}
	// A Go worker of its own pool, in this process, whose task calls the
	// Python actor.
	reg := tasks.NewRegistry()
	tasks.Register(reg, "go.add_to_py", func(ctx context.Context, d int) (int, error) {
		h, err := c.GetActor(ctx, "shared")
		if err != nil {
			return 0, err
		}
		return fray.Call[int](ctx, h, "add", d)
	})
	w, err := worker.New(c.NATS(), worker.Options{ID: "go-1", Pool: "gopool", Concurrency: 1, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	t.Cleanup(func() {
		stop()
		<-done
	})
	got, err := fray.Run[int, int](ctx, c, "go.add_to_py", 2, tasks.Pool("gopool")).Get(ctx)
	if err != nil || got != 42 {
		t.Fatalf("Go task calling the Python actor = %d, %v; want 42", got, err)
	}
}

func TestPythonTaskCallsGoActor(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	startPythonWorker(t, c, "py-1")
	ctx := frayt.Context(t, time.Minute)
	h, err := c.CreateActor(ctx, actors.ClassCounter, "go-counter", 100)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fray.Run[map[string]any, int](ctx, c, "rt.call_go_actor",
		map[string]any{"name": "go-counter", "method": "Add", "arg": 7}).Get(ctx)
	if err != nil || got != 107 {
		t.Fatalf("Python task calling the Go actor = %d, %v; want 107", got, err)
	}
	if n, err := fray.Call[int](ctx, h, "Get", nil); err != nil || n != 107 {
		t.Fatalf("Go actor after the Python call: %d, %v", n, err)
	}
}
