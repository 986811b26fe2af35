package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/registry"
	"github.com/frayhq/fray/tasks"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

// env is a provisioned server, with the pool directory maintained, and
// helpers to start executors and producers.
type env struct {
	t   *testing.T
	url string
	// stopDirectory stops the pool directory's maintainer (once; it is also
	// a clean-up).
	stopDirectory func()

	mu         sync.Mutex
	registered map[string]int // executors registered per pool
}

func newEnv(t *testing.T, po ...broker.ProvisionOptions) *env {
	return startEnv(t, frayt.Server(t, po...).ClientURL())
}

// startEnv maintains the pool directory on url's broker until the test ends.
func startEnv(t *testing.T, url string) *env {
	_, js := frayt.Connect(t, url)
	stop := registry.NewMaintainer(js, registry.MaintainerOptions{Every: 10 * time.Millisecond}).Start()
	var once sync.Once
	stopDirectory := func() {
		once.Do(func() {
			if err := stop(); err != nil {
				t.Errorf("pool directory: %v", err)
			}
		})
	}
	t.Cleanup(stopDirectory)
	return &env{t: t, url: url, stopDirectory: stopDirectory, registered: map[string]int{}}
}

// listPeer registers worker id of the default pool, serving reg's
// functions, and waits until the pool directory lists it: a peer known to
// the pool's workers before it pulls (or without ever pulling).
func (e *env) listPeer(js jetstream.JetStream, id string, reg *tasks.Registry) {
	e.t.Helper()
	kv, err := js.KeyValue(context.Background(), broker.BucketWorkers)
	if err != nil {
		e.t.Fatal(err)
	}
	rec, _ := objects.Marshal(broker.WorkerInfo{V: 1, ID: id, Pool: tasks.DefaultPool, Handlers: reg.Names()})
	if _, err := kv.Put(context.Background(), id, rec); err != nil {
		e.t.Fatal(err)
	}
	e.waitListed(js, tasks.DefaultPool, 1, reg.Names())
}

// waitListed waits until pool's directory counts n workers and lists fns.
func (e *env) waitListed(js jetstream.JetStream, pool string, n int, fns []string) {
	e.t.Helper()
	kv, err := js.KeyValue(context.Background(), broker.BucketPools)
	if err != nil {
		e.t.Fatal(err)
	}
	frayt.Eventually(e.t, 10*time.Second, fmt.Sprintf("pool %s's directory lists %d workers", pool, n), func() bool {
		en, err := kv.Get(context.Background(), pool)
		if err != nil {
			return false
		}
		var d broker.PoolDirectory
		if objects.Unmarshal(en.Value(), &d) != nil || d.Workers < n {
			return false
		}
		for _, fn := range fns {
			if !slices.Contains(d.Functions, fn) {
				return false
			}
		}
		return true
	})
}

func (e *env) store(js jetstream.JetStream, threshold int) *objects.Store {
	s, err := objects.New(context.Background(), js, objects.Options{InlineThreshold: threshold})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// executor runs an executor until the test ends (or stop is called) and
// registers it in the worker registry under id.
func (e *env) executor(id string, reg *tasks.Registry, mod func(*tasks.ExecutorOptions)) (ex *tasks.Executor, stop func()) {
	e.t.Helper()
	nc, js := frayt.Connect(e.t, e.url)
	o := tasks.ExecutorOptions{WorkerID: id, Registry: reg, Concurrency: 4, Objects: e.store(js, 0)}
	if mod != nil {
		mod(&o)
	}
	ex, err := tasks.NewExecutor(nc, js, o)
	if err != nil {
		e.t.Fatal(err)
	}
	info, _ := objects.Marshal(broker.WorkerInfo{V: 1, ID: id, Pool: orDefault(o.Pool), Handlers: reg.Names(), Concurrency: o.Concurrency})
	kv, _ := js.KeyValue(context.Background(), broker.BucketWorkers)
	if _, err := kv.Put(context.Background(), id, info); err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.registered[orDefault(o.Pool)]++
	n := e.registered[orDefault(o.Pool)]
	e.mu.Unlock()
	e.waitListed(js, orDefault(o.Pool), n, reg.Names())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ex.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("executor %s: %v", id, err)
			}
			kv.Delete(context.Background(), id)
			e.mu.Lock()
			e.registered[orDefault(o.Pool)]--
			e.mu.Unlock()
		})
	}
	e.t.Cleanup(stop)
	return ex, stop
}

func orDefault(p string) string {
	if p == "" {
		return tasks.DefaultPool
	}
	return p
}

func (e *env) producer() *tasks.Producer {
	e.t.Helper()
	nc, js := frayt.Connect(e.t, e.url)
	p, err := tasks.NewProducer(frayt.Context(e.t, 10*time.Second), nc, tasks.ProducerOptions{Objects: e.store(js, 0)})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(p.Close)
	return p
}

func basicRegistry() *tasks.Registry {
	reg := tasks.NewRegistry()
	tasks.Register(reg, "add", func(_ context.Context, in [2]int) (int, error) { return in[0] + in[1], nil })
	tasks.Register(reg, "fail", func(_ context.Context, msg string) (int, error) { return 0, &myErr{msg} })
	tasks.Register(reg, "panic", func(_ context.Context, _ struct{}) (int, error) { panic("boom") })
	tasks.Register(reg, "echo", func(_ context.Context, b []byte) ([]byte, error) { return b, nil })
	tasks.Register(reg, "len", func(_ context.Context, b []byte) (int, error) { return len(b), nil })
	tasks.Register(reg, "block", func(ctx context.Context, _ struct{}) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	return reg
}

type myErr struct{ msg string }

func (m *myErr) Error() string { return m.msg }

func TestRunReturnsTheHandlersValue(t *testing.T) {
	e := newEnv(t)
	e.executor("w1", basicRegistry(), nil)
	p := e.producer()
	ctx := frayt.Context(t, 10*time.Second)
	fut := tasks.TypedFuture[int]{Future: p.Submit(ctx, "add", [2]int{2, 40})}
	got, err := fut.Get(ctx)
	if err != nil || got != 42 {
		t.Fatalf("got %d, %v; want 42", got, err)
	}
}

func TestHandlerErrorReachesCallerAsRemoteError(t *testing.T) {
	e := newEnv(t)
	e.executor("w-err", basicRegistry(), nil)
	p := e.producer()
	ctx := frayt.Context(t, 10*time.Second)
	err := p.Submit(ctx, "fail", "disk on fire").Get(ctx, nil)
	var re *tasks.RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("got %v (%T), want *RemoteError", err, err)
	}
	if re.Fn != "fail" || re.Message != "disk on fire" || re.Type != "*tasks_test.myErr" || re.Worker != "w-err" || re.Attempt != 1 || re.Kind != tasks.KindHandler {
		t.Fatalf("remote error fields: %+v", re)
	}
}

func TestPanicIsReportedAndWorkerKeepsServing(t *testing.T) {
	e := newEnv(t)
	e.executor("w1", basicRegistry(), nil)
	p := e.producer()
	ctx := frayt.Context(t, 10*time.Second)
	err := p.Submit(ctx, "panic", struct{}{}).Get(ctx, nil)
	var re *tasks.RemoteError
	if !errors.As(err, &re) || re.Kind != tasks.KindPanic || !strings.HasPrefix(re.Message, "boom\n") || strings.Count(err.Error(), "panic: ") != 1 {
		t.Fatalf("got %v, want a panic RemoteError starting with boom, said once to be a panic", err)
	}
	var sum int
	if err := p.Submit(ctx, "add", [2]int{1, 1}).Get(ctx, &sum); err != nil || sum != 2 {
		t.Fatalf("after panic: %d, %v", sum, err)
	}
}

func TestRetryableErrorsRetryUntilSuccess(t *testing.T) {
	e := newEnv(t)
	reg := tasks.NewRegistry()
	var calls atomic.Int32
	tasks.Register(reg, "flaky", func(ctx context.Context, _ struct{}) (int, error) {
		ti, _ := tasks.CurrentTask(ctx)
		calls.Add(1)
		if ti.Attempt < 3 {
			return 0, tasks.Retryable(fmt.Errorf("attempt %d failed", ti.Attempt))
		}
		return ti.Attempt, nil
	})
	tasks.Register(reg, "plainfail", func(ctx context.Context, _ struct{}) (int, error) {
		calls.Add(100)
		return 0, errors.New("not retryable")
	})
	e.executor("w1", reg, nil)
	p := e.producer()
	ctx := frayt.Context(t, 10*time.Second)
	var attempt int
	if err := p.Submit(ctx, "flaky", struct{}{}, tasks.Retries(3, 10*time.Millisecond)).Get(ctx, &attempt); err != nil || attempt != 3 {
		t.Fatalf("flaky: attempt %d, %v; want success on attempt 3", attempt, err)
	}
	// Without retries left, the last error is returned.
	err := p.Submit(ctx, "flaky", struct{}{}, tasks.Retries(1, time.Millisecond)).Get(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), "attempt 2 failed") {
		t.Fatalf("flaky with 1 retry: %v, want the attempt 2 error", err)
	}
	// An error not marked retryable runs once even with retries.
	calls.Store(0)
	if err := p.Submit(ctx, "plainfail", struct{}{}, tasks.Retries(5, time.Millisecond)).Get(ctx, nil); err == nil {
		t.Fatal("plainfail succeeded")
	}
	if c := calls.Load(); c != 100 {
		t.Fatalf("plainfail ran %d times, want once", c/100)
	}
}

func TestTimeoutCancelsTheAttempt(t *testing.T) {
	e := newEnv(t)
	e.executor("w1", basicRegistry(), nil)
	p := e.producer()
	ctx := frayt.Context(t, 10*time.Second)
	err := p.Submit(ctx, "block", struct{}{}, tasks.Timeout(100*time.Millisecond)).Get(ctx, nil)
	if !errors.Is(err, tasks.ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
}

func TestCancelStopsRunningTaskAndSkipsQueuedOne(t *testing.T) {
	e := newEnv(t)
	reg := basicRegistry()
	started := make(chan string, 10)
	tasks.Register(reg, "wait", func(ctx context.Context, _ struct{}) (int, error) {
		ti, _ := tasks.CurrentTask(ctx)
		started <- ti.ID
		<-ctx.Done()
		return 0, ctx.Err()
	})
	e.executor("w1", reg, func(o *tasks.ExecutorOptions) { o.Concurrency = 1 })
	p := e.producer()
	ctx := frayt.Context(t, 10*time.Second)
	running := p.Submit(ctx, "wait", struct{}{})
	queued := p.Submit(ctx, "wait", struct{}{})
	select {
	case id := <-started:
		if id != running.TaskID() {
			t.Fatalf("started %s first, want %s", id, running.TaskID())
		}
	case <-ctx.Done():
		t.Fatal("first task never started")
	}
	if err := queued.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if err := running.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*tasks.Future{running, queued} {
		if err := f.Get(ctx, nil); !errors.Is(err, tasks.ErrCancelled) {
			t.Fatalf("future %s: %v, want ErrCancelled", f.ID(), err)
		}
	}
	// The worker moves on: a new task runs, and the cancelled queued one
	// never started.
	var sum int
	if err := p.Submit(ctx, "add", [2]int{1, 2}).Get(ctx, &sum); err != nil || sum != 3 {
		t.Fatalf("after cancel: %d %v", sum, err)
	}
	select {
	case id := <-started:
		t.Fatalf("cancelled task %s started", id)
	default:
	}
}

func TestUnknownFunctionFailsFastOnProducerAndWorker(t *testing.T) {
	e := newEnv(t)
	e.executor("w1", basicRegistry(), nil)
	p := e.producer()
	ctx := frayt.Context(t, 10*time.Second)
	err := p.Submit(ctx, "nosuch", 1).Get(ctx, nil)
	if !errors.Is(err, tasks.ErrUnknownFunction) || !strings.Contains(err.Error(), "add") {
		t.Fatalf("producer: %v, want ErrUnknownFunction listing registered functions", err)
	}
	// A task that reaches a worker anyway (published by another client) is
	// failed by the worker, not redelivered forever: a version-2 record
	// (named by its Nats-Msg-Id) and a version-1 one (named in its body).
	_, js := frayt.Connect(t, e.url)
	raw, _ := objects.Marshal(1)
	v2, _ := objects.Marshal(taskwire.Task{V: taskwire.TaskVersion, Fn: "nosuch", Arg: raw})
	v1, _ := objects.Marshal(taskwire.Task{V: taskwire.TaskVersionV1, ID: "t2", Owner: p.Owner(), Fn: "nosuch", Arg: raw, MaxDeliveries: 5})
	for _, m := range []*nats.Msg{
		{Subject: taskwire.TaskSubject("default"), Data: v2, Header: nats.Header{jetstream.MsgIDHeader: {taskwire.TaskMsgID(p.Owner(), "t1")}}},
		{Subject: taskwire.TaskSubject("default"), Data: v1, Header: nats.Header{jetstream.MsgIDHeader: {"t2"}, taskwire.HeaderOwner: {p.Owner()}}},
	} {
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"t1", "t2"} {
		f, _ := p.Future(taskwire.FutureID(p.Owner(), id))
		if err := f.Get(ctx, nil); !errors.Is(err, tasks.ErrUnknownFunction) {
			t.Fatalf("worker, task %s: %v, want ErrUnknownFunction", id, err)
		}
	}
}

// In a pool whose workers register different functions, a worker that
// lacks a task's function hands it on to a peer that has it. Hand-ons are
// not attempts: they use up neither max_deliveries nor retries, so every
// task runs, and a retried one gets all its retries.
func TestHandOnsInAMixedPoolAreNotAttempts(t *testing.T) {
	e := newEnv(t)
	e.executor("lacks-1", basicRegistry(), nil)
	e.executor("lacks-2", basicRegistry(), nil)
	reg := tasks.NewRegistry()
	var mu sync.Mutex
	attempts := map[string][]int{}
	tasks.Register(reg, "work", func(ctx context.Context, failFirst int) (int, error) {
		ti, _ := tasks.CurrentTask(ctx)
		mu.Lock()
		attempts[ti.ID] = append(attempts[ti.ID], ti.Attempt)
		n := len(attempts[ti.ID])
		mu.Unlock()
		time.Sleep(20 * time.Millisecond) // the work: keeps the one slot busy so peers get tasks
		if n <= failFirst {
			return 0, tasks.Retryable(fmt.Errorf("transient #%d", n))
		}
		return n, nil
	})
	e.executor("has", reg, func(o *tasks.ExecutorOptions) { o.Concurrency = 1 })
	p := e.producer()
	ctx := frayt.Context(t, 60*time.Second)
	var futs []*tasks.Future
	for range 20 {
		futs = append(futs, p.Submit(ctx, "work", 0, tasks.MaxDeliveries(2)))
	}
	retried := p.Submit(ctx, "work", 2, tasks.Retries(2, 10*time.Millisecond), tasks.MaxDeliveries(1))
	for i, f := range append(futs, retried) {
		if err := f.Get(ctx, nil); err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for id, a := range attempts {
		want := []int{1}
		if len(a) == 3 {
			want = []int{1, 2, 3}
		}
		if fmt.Sprint(a) != fmt.Sprint(want) {
			t.Errorf("task %s ran as attempts %v, want %v", id, a, want)
		}
	}
}

func TestMalformedTaskIsTerminatedAndReported(t *testing.T) {
	e := newEnv(t)
	ex, _ := e.executor("w1", basicRegistry(), nil)
	p := e.producer()
	ctx := frayt.Context(t, 10*time.Second)
	nc, _ := frayt.Connect(t, e.url)
	js, _ := jetstream.New(nc)
	// Named as a version-2 task is (Nats-Msg-Id), and as a version-1 one
	// was (Fray-Owner).
	for _, h := range []nats.Header{
		{jetstream.MsgIDHeader: {taskwire.TaskMsgID(p.Owner(), "bad1")}},
		{jetstream.MsgIDHeader: {"bad2"}, taskwire.HeaderOwner: {p.Owner()}},
	} {
		msg := &nats.Msg{Subject: taskwire.TaskSubject("default"), Data: []byte{0xff, 0x00, 0x13}, Header: h}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"bad1", "bad2"} {
		f, _ := p.Future(taskwire.FutureID(p.Owner(), id))
		if err := f.Get(ctx, nil); !errors.Is(err, tasks.ErrBadInput) {
			t.Fatalf("task %s: got %v, want ErrBadInput", id, err)
		}
	}
	// The message is gone from the queue (terminated), and the worker serves on.
	frayt.Eventually(t, 5*time.Second, "malformed task removed from queue", func() bool {
		s, _ := js.Stream(ctx, broker.StreamTasks)
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs == 0
	})
	var sum int
	if err := p.Submit(ctx, "add", [2]int{3, 4}).Get(ctx, &sum); err != nil || sum != 7 {
		t.Fatalf("after poison: %d %v", sum, err)
	}
	_ = ex
	// A wrongly typed argument is bad input too, reported not retried.
	if err := p.Submit(ctx, "add", "not a pair").Get(ctx, nil); !errors.Is(err, tasks.ErrBadInput) {
		t.Fatalf("wrong arg type: %v, want ErrBadInput", err)
	}
}

func TestFullQueueGivesErrQueueFull(t *testing.T) {
	e := newEnv(t, broker.ProvisionOptions{TaskQueueMaxMsgs: 3})
	p := e.producer()
	ctx := frayt.Context(t, 10*time.Second)
	var futs []*tasks.Future
	for i := range 5 {
		futs = append(futs, p.Submit(ctx, "add", [2]int{i, i}))
	}
	for _, f := range futs[:3] {
		if err := f.Queued(ctx); err != nil {
			t.Fatalf("Queued of a task that fit: %v", err)
		}
	}
	full := 0
	for _, f := range futs[3:] {
		if err := f.Queued(ctx); !errors.Is(err, tasks.ErrQueueFull) {
			t.Fatalf("Queued past the limit: %v, want ErrQueueFull", err)
		}
		if err := f.Get(ctx, nil); !errors.Is(err, tasks.ErrQueueFull) {
			t.Fatalf("submission past the limit: %v, want ErrQueueFull", err)
		}
		full++
	}
	// The three that fit are queued and complete once a worker appears.
	e.executor("late", basicRegistry(), nil)
	for i, f := range futs[:3] {
		var sum int
		if err := f.Get(ctx, &sum); err != nil || sum != 2*i {
			t.Fatalf("queued task %d: %d %v", i, sum, err)
		}
	}
}

func TestFutureByIDResolvesInAnotherProducer(t *testing.T) {
	e := newEnv(t)
	e.executor("w1", basicRegistry(), nil)
	p1 := e.producer()
	ctx := frayt.Context(t, 10*time.Second)
	done := p1.Submit(ctx, "add", [2]int{5, 5})
	if err := done.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	p1.Close()
	p2 := e.producer()
	f, err := p2.Future(done.ID())
	if err != nil {
		t.Fatal(err)
	}
	var sum int
	if err := f.Get(ctx, &sum); err != nil || sum != 10 {
		t.Fatalf("by id: %d %v", sum, err)
	}
	if _, err := p2.Future("nodot"); !errors.Is(err, tasks.ErrBadID) {
		t.Fatalf("bad id: %v", err)
	}
}

func TestLargeValuesTravelThroughTheObjectStore(t *testing.T) {
	e := newEnv(t)
	e.executor("w1", basicRegistry(), nil)
	p := e.producer()
	ctx := frayt.Context(t, 20*time.Second)
	big := make([]byte, 600<<10)
	for i := range big {
		big[i] = byte(i % 251)
	}
	var back []byte
	f := p.Submit(ctx, "echo", big)
	if err := f.Get(ctx, &back); err != nil || len(back) != len(big) || back[12345] != big[12345] {
		t.Fatalf("echo of %d bytes: %d bytes, %v", len(big), len(back), err)
	}
	res, _ := f.Result(ctx)
	if res.ValueRef == nil {
		t.Fatal("a 600 KiB result travelled inline, want a ref")
	}
}

// Without an object store a worker cannot hand back a large result: the
// task fails with a clear error instead of a publish the server refuses
// (which would rerun the task).
func TestLargeResultFailsClearlyOnAWorkerWithoutObjectStore(t *testing.T) {
	e := newEnv(t)
	reg := tasks.NewRegistry()
	tasks.Register(reg, "big", func(_ context.Context, n int) ([]byte, error) { return make([]byte, n), nil })
	e.executor("w1", reg, func(o *tasks.ExecutorOptions) { o.Objects = nil })
	p := e.producer()
	ctx := frayt.Context(t, 10*time.Second)
	err := p.Submit(ctx, "big", objects.DefaultInlineThreshold+1).Get(ctx, nil)
	var re *tasks.RemoteError
	if !errors.As(err, &re) || re.Kind != tasks.KindObject || !strings.Contains(re.Message, "no object store") {
		t.Fatalf("got %v, want a RemoteError of kind object saying the worker has no object store", err)
	}
}

func TestRefArgumentIsResolvedOnTheWorker(t *testing.T) {
	e := newEnv(t)
	e.executor("w1", basicRegistry(), nil)
	p := e.producer()
	_, js := frayt.Connect(t, e.url)
	ctx := frayt.Context(t, 10*time.Second)
	ref, err := e.store(js, 0).Put(ctx, []byte("hello refs"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := p.Submit(ctx, "len", ref).Get(ctx, &n); err != nil || n != len("hello refs") {
		t.Fatalf("len(ref): %d %v", n, err)
	}
}

func TestOversizedArgumentIsRefusedNamingTheLimit(t *testing.T) {
	e := newEnv(t)
	nc, js := frayt.Connect(t, e.url)
	p, err := tasks.NewProducer(frayt.Context(t, 5*time.Second), nc, tasks.ProducerOptions{Objects: e.store(js, 0), MaxValueSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := frayt.Context(t, 5*time.Second)
	err = p.Submit(ctx, "echo", make([]byte, 2000)).Get(ctx, nil)
	if !errors.Is(err, tasks.ErrTooLarge) || !strings.Contains(err.Error(), "1000-byte limit") {
		t.Fatalf("got %v, want ErrTooLarge naming the 1000-byte limit", err)
	}
}

func TestLongTaskIsNotRedeliveredWhileItsWorkerLives(t *testing.T) {
	e := newEnv(t)
	reg := tasks.NewRegistry()
	var runs atomic.Int32
	tasks.Register(reg, "long", func(ctx context.Context, d time.Duration) (int32, error) {
		n := runs.Add(1)
		select {
		case <-time.After(d): // the task's own work
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		return n, nil
	})
	ackWait := time.Second
	e.executor("w1", reg, func(o *tasks.ExecutorOptions) { o.AckWait = ackWait })
	e.executor("w2", reg, func(o *tasks.ExecutorOptions) { o.AckWait = ackWait })
	p := e.producer()
	ctx := frayt.Context(t, 20*time.Second)
	var n int32
	if err := p.Submit(ctx, "long", 3*ackWait+ackWait/2).Get(ctx, &n); err != nil {
		t.Fatal(err)
	}
	if r := runs.Load(); r != 1 {
		t.Fatalf("task ran %d times over 3.5x AckWait, want once", r)
	}
}

// A finished task is acked only once its result is stored. Here the
// results stream is slow to answer (the PubAck is held for 3.5x AckWait, as
// when a replicated stream is electing a leader): the task's lease must not
// lapse meanwhile, or another worker would run it again.
func TestTaskAwaitingASlowResultPubAckIsNotRedelivered(t *testing.T) {
	e := newEnv(t)
	ctx := frayt.Context(t, 30*time.Second)
	nc, js := frayt.Connect(t, e.url)
	// The fault: the results stream stops capturing results, and a stand-in
	// answers their PubAcks late.
	rs, err := js.Stream(ctx, broker.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	cfg := rs.CachedInfo().Config
	cfg.Subjects = []string{"fray.results-elsewhere.>"}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	held := make(chan *nats.Msg, 16)
	if _, err := nc.Subscribe("fray.results.>", func(m *nats.Msg) {
		if m.Reply != "" {
			held <- m
		}
	}); err != nil {
		t.Fatal(err)
	}

	reg := tasks.NewRegistry()
	var runs atomic.Int32
	tasks.Register(reg, "count", func(context.Context, struct{}) (int32, error) { return runs.Add(1), nil })
	ackWait := time.Second
	e.executor("w1", reg, func(o *tasks.ExecutorOptions) { o.AckWait = ackWait })
	e.executor("w2", reg, func(o *tasks.ExecutorOptions) { o.AckWait = ackWait })
	p := e.producer()
	if err := p.Submit(ctx, "count", struct{}{}).Queued(ctx); err != nil {
		t.Fatal(err)
	}
	var m *nats.Msg
	select {
	case m = <-held:
	case <-ctx.Done():
		t.Fatal("no result published")
	}
	time.Sleep(3*ackWait + ackWait/2) // the fault's length: the PubAck is late by this much
	if err := m.Respond([]byte(`{"stream":"FRAY_RESULTS","seq":1}`)); err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, broker.StreamTasks, taskwire.ConsumerName("default"))
	if err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 5*time.Second, "the task is acked", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	info, _ := cons.Info(ctx)
	if r := runs.Load(); r != 1 || info.Delivered.Consumer != 1 {
		t.Fatalf("task ran %d times (%d deliveries) while its result awaited a PubAck, want once", r, info.Delivered.Consumer)
	}
}

// A live future resolves only with the result the stream stored, the one
// every later reader gets by id: a result the stream refuses (here, over
// its size limit) is never heard, even though it was published.
func TestALiveFutureResolvesOnlyWithAStoredResult(t *testing.T) {
	e := newEnv(t)
	ctx := frayt.Context(t, 10*time.Second)
	p := e.producer()
	fut := p.Submit(ctx, "nobody-serves-this-yet", 1)
	if err := fut.Queued(ctx); err != nil {
		t.Fatal(err)
	}
	owner, id, err := taskwire.ParseFutureID(fut.ID())
	if err != nil {
		t.Fatal(err)
	}
	_, js := frayt.Connect(t, e.url)
	rs, err := js.Stream(ctx, broker.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	cfg := rs.CachedInfo().Config
	cfg.MaxMsgSize = 512
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	publish := func(v string) error {
		val, _ := objects.Marshal(v)
		data, _ := objects.Marshal(&tasks.Result{V: taskwire.ResultVersion, ID: id, Value: val, Worker: "forger"})
		_, err := js.Publish(ctx, taskwire.ResultSubject(owner, id), data)
		return err
	}
	if err := publish(strings.Repeat("refused ", 100)); err == nil {
		t.Fatal("a result over the stream's size limit was stored")
	}
	if err := publish("stored"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := fut.Get(ctx, &got); err != nil || got != "stored" {
		t.Fatalf("live future: %.20q, %v; want the stored result", got, err)
	}
	again, err := e.producer().Future(fut.ID())
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Get(ctx, &got); err != nil || got != "stored" {
		t.Fatalf("by id: %.20q, %v", got, err)
	}
}

func TestExecutorHoldsNoMoreMessagesThanSlots(t *testing.T) {
	e := newEnv(t)
	reg := tasks.NewRegistry()
	release := make(chan struct{})
	var started atomic.Int32
	tasks.Register(reg, "hold", func(ctx context.Context, _ int) (int, error) {
		started.Add(1)
		select {
		case <-release:
		case <-ctx.Done(): // the executor stops: the test failed before releasing it
		}
		return 0, nil
	})
	e.executor("w1", reg, func(o *tasks.ExecutorOptions) { o.Concurrency = 2 })
	p := e.producer()
	ctx := frayt.Context(t, 20*time.Second)
	var futs []*tasks.Future
	for i := range 10 {
		futs = append(futs, p.Submit(ctx, "hold", i))
	}
	frayt.Eventually(t, 5*time.Second, "two tasks start", func() bool { return started.Load() == 2 })
	_, js := frayt.Connect(t, e.url)
	cons, err := js.Consumer(ctx, broker.StreamTasks, taskwire.ConsumerName("default"))
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.ConsumerInfo
	frayt.Eventually(t, 5*time.Second, "all ten tasks stored", func() bool {
		info, err = cons.Info(ctx)
		return err == nil && info.NumAckPending+int(info.NumPending) == 10
	})
	if info.NumAckPending != 2 || info.NumPending != 8 {
		t.Fatalf("ack pending %d, pending %d: want 2 held by the worker and 8 in the queue", info.NumAckPending, info.NumPending)
	}
	close(release)
	for _, f := range futs {
		if err := f.Get(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDrainFinishesRunningTasksAndHandsBackTheRest(t *testing.T) {
	e := newEnv(t)
	reg := tasks.NewRegistry()
	gate := make(chan struct{})
	tasks.Register(reg, "gated", func(ctx context.Context, _ int) (string, error) {
		ti, _ := tasks.CurrentTask(ctx)
		if ti.Worker == "a" {
			select {
			case <-gate:
			case <-ctx.Done(): // a's drain timed out: the test failed
			}
		}
		return ti.Worker, nil
	})
	exA, stopA := e.executor("a", reg, func(o *tasks.ExecutorOptions) { o.Concurrency = 2 })
	p := e.producer()
	ctx := frayt.Context(t, 20*time.Second)
	var futs []*tasks.Future
	for i := range 6 {
		futs = append(futs, p.Submit(ctx, "gated", i))
	}
	frayt.Eventually(t, 5*time.Second, "worker a runs two tasks", func() bool { return exA.Running() == 2 })
	stopped := make(chan struct{})
	go func() { stopA(); close(stopped) }()
	// While a drains, a second worker takes the queued tasks.
	e.executor("b", reg, nil)
	byWorker := map[string]int{}
	for _, f := range futs[2:] {
		var w string
		if err := f.Get(ctx, &w); err != nil {
			t.Fatal(err)
		}
		byWorker[w]++
	}
	if byWorker["b"] != 4 {
		t.Fatalf("queued tasks ran on %v, want all 4 on b", byWorker)
	}
	close(gate)
	<-stopped
	for _, f := range futs[:2] {
		var w string
		if err := f.Get(ctx, &w); err != nil || w != "a" {
			t.Fatalf("running task finished on %q, %v; want a", w, err)
		}
	}
}

func TestDrainTimeoutHandsRunningTasksBack(t *testing.T) {
	e := newEnv(t)
	reg := tasks.NewRegistry()
	tasks.Register(reg, "sticky", func(ctx context.Context, _ int) (string, error) {
		ti, _ := tasks.CurrentTask(ctx)
		if ti.Worker == "a" {
			<-ctx.Done()
			return "", ctx.Err()
		}
		return ti.Worker, nil
	})
	exA, stopA := e.executor("a", reg, func(o *tasks.ExecutorOptions) { o.Concurrency = 1; o.DrainTimeout = 200 * time.Millisecond })
	p := e.producer()
	ctx := frayt.Context(t, 20*time.Second)
	f := p.Submit(ctx, "sticky", 1)
	frayt.Eventually(t, 5*time.Second, "a runs the task", func() bool { return exA.Running() == 1 })
	stopA()
	e.executor("b", reg, nil)
	var w string
	if err := f.Get(ctx, &w); err != nil || w != "b" {
		t.Fatalf("handed-back task: %q %v, want it finished on b", w, err)
	}
}

func TestWaitHasRayWaitSemantics(t *testing.T) {
	e := newEnv(t)
	reg := basicRegistry()
	e.executor("w1", reg, nil)
	p := e.producer()
	ctx := frayt.Context(t, 10*time.Second)
	futs := []*tasks.Future{
		p.Submit(ctx, "block", struct{}{}),
		p.Submit(ctx, "add", [2]int{1, 1}),
		p.Submit(ctx, "block", struct{}{}),
		p.Submit(ctx, "add", [2]int{2, 2}),
	}
	ready, pending, err := tasks.Wait(ctx, futs, 2, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(ready) != 2 || ready[0] != futs[1] || ready[1] != futs[3] || len(pending) != 2 || pending[0] != futs[0] || pending[1] != futs[2] {
		t.Fatalf("ready %v pending %v: want [1 3] and [0 2] in input order", ids(ready), ids(pending))
	}
	// n = 1 returns exactly one ready future even when two are done.
	ready, pending, _ = tasks.Wait(ctx, futs, 1, 0)
	if len(ready) != 1 || ready[0] != futs[1] || len(pending) != 3 {
		t.Fatalf("n=1: ready %v pending %v", ids(ready), ids(pending))
	}
	// Timeout 0 polls once; a positive timeout returns what is ready.
	start := time.Now()
	ready, _, _ = tasks.Wait(ctx, futs, 3, 0)
	if len(ready) != 2 || time.Since(start) > time.Second {
		t.Fatalf("poll: %d ready after %s", len(ready), time.Since(start))
	}
	ready, _, _ = tasks.Wait(ctx, futs, 4, 100*time.Millisecond)
	if len(ready) != 2 {
		t.Fatalf("timeout: %d ready, want 2", len(ready))
	}
	if _, _, err := tasks.Wait(ctx, futs, 5, 0); !errors.Is(err, tasks.ErrBadWait) {
		t.Fatalf("n > len: %v", err)
	}
	for _, f := range []*tasks.Future{futs[0], futs[2]} {
		f.Cancel(ctx)
	}
}

func ids(fs []*tasks.Future) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.TaskID())
	}
	return out
}

func TestAFreeSlotIsFilledWhileTheOtherSlotsRunLongTasks(t *testing.T) {
	e := newEnv(t)
	reg := tasks.NewRegistry()
	gates := make([]chan struct{}, 5)
	for i := range gates {
		gates[i] = make(chan struct{})
	}
	var started atomic.Int32
	tasks.Register(reg, "gated", func(ctx context.Context, i int) (int, error) {
		started.Add(1)
		select {
		case <-gates[i]:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		return i, nil
	})
	e.executor("w1", reg, func(o *tasks.ExecutorOptions) { o.Concurrency = 4; o.DrainTimeout = time.Second })
	p := e.producer()
	ctx := frayt.Context(t, 10*time.Second)
	var futs []*tasks.Future
	for i := range 4 {
		futs = append(futs, p.Submit(ctx, "gated", i))
	}
	frayt.Eventually(t, 5*time.Second, "four tasks start", func() bool { return started.Load() == 4 })
	// One finishes; three long ones keep running. The freed slot must take
	// the next task at once, not wait for more slots to free up.
	close(gates[0])
	if err := futs[0].Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	close(gates[4])
	if err := p.Submit(ctx, "gated", 4).Get(ctx, nil); err != nil {
		t.Fatalf("task for the one free slot: %v", err)
	}
	for i := 1; i < 4; i++ {
		close(gates[i])
	}
}

func TestAMessageFromARequestTheWorkerForgotIsHandedBackWhenNoSlotIsFree(t *testing.T) {
	// A pull request can outlive the worker's memory of it: after a quick
	// reconnect the server may still hold it (the resubscribed inbox gives
	// it interest again) while the worker has asked anew. Forge one: copy
	// the worker's request, reply subject and all.
	e := newEnv(t)
	snoop, _ := frayt.Connect(t, e.url)
	requests := make(chan *nats.Msg, 16)
	sub, err := snoop.ChanSubscribe("$JS.API.CONSUMER.MSG.NEXT."+broker.StreamTasks+"."+taskwire.ConsumerName("default"), requests)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	snoop.Flush()
	reg := tasks.NewRegistry()
	release := make(chan struct{})
	defer close(release)
	var started atomic.Int32
	tasks.Register(reg, "hold", func(ctx context.Context, _ int) (int, error) {
		started.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return 0, nil
	})
	e.executor("w1", reg, func(o *tasks.ExecutorOptions) { o.Concurrency = 2; o.DrainTimeout = time.Second })
	ctx := frayt.Context(t, 20*time.Second)
	var req *nats.Msg
	select {
	case req = <-requests:
	case <-ctx.Done():
		t.Fatal("the worker sent no pull request")
	}
	if err := snoop.PublishRequest(req.Subject, req.Reply[:strings.LastIndexByte(req.Reply, '.')]+".zz", req.Data); err != nil {
		t.Fatal(err)
	}
	snoop.Flush()
	p := e.producer()
	for i := range 10 {
		p.Submit(ctx, "hold", i)
	}
	frayt.Eventually(t, 5*time.Second, "two tasks start", func() bool { return started.Load() == 2 })
	// The two messages beyond w1's slots must not wait in w1 for a slot (or
	// for AckWait): a second worker gets them with the rest at once.
	e.executor("w2", reg, func(o *tasks.ExecutorOptions) { o.Concurrency = 8; o.DrainTimeout = time.Second })
	frayt.Eventually(t, 5*time.Second, "the other eight tasks start on w2", func() bool { return started.Load() == 10 })
}

func TestForeignFutureResolvesWithErrClosedWhenItsProducerCloses(t *testing.T) {
	e := newEnv(t)
	nc, js := frayt.Connect(t, e.url)
	p, err := tasks.NewProducer(frayt.Context(t, 10*time.Second), nc, tasks.ProducerOptions{Objects: e.store(js, 0)})
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.Future(taskwire.FutureID("someoneelse", "never-submitted"))
	if err != nil {
		t.Fatal(err)
	}
	f.Done() // starts watching for the result
	p.Close()
	ctx := frayt.Context(t, 5*time.Second)
	if err := f.Get(ctx, nil); !errors.Is(err, tasks.ErrClosed) {
		t.Fatalf("foreign future after Close: %v, want ErrClosed", err)
	}
}

func TestNewProducerOnAnUnprovisionedServerFailsWithoutLeaks(t *testing.T) {
	srv, err := broker.Start(context.Background(), broker.Options{StoreDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, js := frayt.Connect(t, srv.ClientURL())
	js.AccountInfo(frayt.Context(t, 5*time.Second)) // the connection's own request mux starts here
	before := goleak.IgnoreCurrent()
	_, err = tasks.NewProducer(frayt.Context(t, 5*time.Second), nc, tasks.ProducerOptions{})
	if err == nil || !strings.Contains(err.Error(), "provisioned") {
		t.Fatalf("NewProducer on an unprovisioned server: %v, want an error asking whether it is provisioned", err)
	}
	goleak.VerifyNone(t, before)
}

// A producer needs the results stream to republish what it stores (layout
// 2); on an older layout it says what to do instead of never hearing results.
func TestNewProducerRefusesAResultsStreamThatDoesNotRepublish(t *testing.T) {
	srv := frayt.Server(t)
	nc, js := frayt.Connect(t, srv.ClientURL())
	ctx := frayt.Context(t, 10*time.Second)
	rs, err := js.Stream(ctx, broker.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	cfg := rs.CachedInfo().Config
	cfg.RePublish = nil
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	before := goleak.IgnoreCurrent()
	_, err = tasks.NewProducer(ctx, nc, tasks.ProducerOptions{})
	if !errors.Is(err, broker.ErrLayoutTooOld) || !strings.Contains(err.Error(), "fray-broker") {
		t.Fatalf("got %v, want ErrLayoutTooOld saying to restart fray-broker", err)
	}
	goleak.VerifyNone(t, before)
}

// gatedDialer dials only while open.
type gatedDialer struct{ open atomic.Bool }

func (d *gatedDialer) Dial(network, address string) (net.Conn, error) {
	if !d.open.Load() {
		return nil, errors.New("dialing blocked by the test")
	}
	return net.Dial(network, address)
}

func TestForeignFutureGetsAResultStoredWhileItsProducerWasDisconnected(t *testing.T) {
	// nats-server picks the port the first time (one reserved here and
	// released is free for anyone to take first); the restart asks for it again.
	dir, port := t.TempDir(), -1
	start := func() *broker.Server {
		srv, err := broker.Start(context.Background(), broker.Options{StoreDir: dir, Port: port})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		return srv
	}
	srv := start()
	port = srv.NATS().Addr().(*net.TCPAddr).Port
	nc, js := frayt.Connect(t, srv.ClientURL())
	if err := broker.Provision(frayt.Context(t, 10*time.Second), js, nc.ConnectedServerVersion(), broker.ProvisionOptions{}); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	dialer := &gatedDialer{}
	dialer.open.Store(true)
	pnc, err := nats.Connect(srv.ClientURL(), nats.SetCustomDialer(dialer), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pnc.Close)
	p, err := tasks.NewProducer(frayt.Context(t, 10*time.Second), pnc, tasks.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	f, _ := p.Future(taskwire.FutureID("elsewhere", "t1"))
	f.Done()
	frayt.Eventually(t, 5*time.Second, "the future's first lookup found nothing", func() bool {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 2)
		for _, g := range strings.Split(b.String(), "\n\n") {
			if strings.Contains(g, "watchForeign") && strings.Contains(g, "[chan receive") && !strings.Contains(g, "lookup") {
				return true
			}
		}
		return false
	})
	// The broker restarts; the result is stored while the producer is away.
	dialer.open.Store(false)
	srv.Shutdown()
	srv = start()
	_, js2 := frayt.Connect(t, srv.ClientURL())
	rec, _ := objects.Marshal(tasks.Result{V: taskwire.ResultVersion, ID: "t1", Value: []byte{0x18, 42}})
	ctx := frayt.Context(t, 15*time.Second)
	if _, err := js2.Publish(ctx, taskwire.ResultSubject("elsewhere", "t1"), rec); err != nil {
		t.Fatal(err)
	}
	dialer.open.Store(true)
	var v int
	if err := f.Get(ctx, &v); err != nil || v != 42 {
		t.Fatalf("foreign future after the reconnect: %d, %v; want 42", v, err)
	}
}

func TestWorkerRecreatesItsConsumerWhenItIsDeleted(t *testing.T) {
	e := newEnv(t)
	e.executor("w1", basicRegistry(), nil)
	p := e.producer()
	ctx := frayt.Context(t, 30*time.Second)
	var sum int
	if err := p.Submit(ctx, "add", [2]int{1, 1}).Get(ctx, &sum); err != nil {
		t.Fatal(err)
	}
	_, js := frayt.Connect(t, e.url)
	if err := js.DeleteConsumer(ctx, broker.StreamTasks, taskwire.ConsumerName("default")); err != nil {
		t.Fatal(err)
	}
	// Tasks submitted after the deletion still run once the worker has
	// put its consumer back.
	if err := p.Submit(ctx, "add", [2]int{2, 3}).Get(ctx, &sum); err != nil || sum != 5 {
		t.Fatalf("after consumer deletion: %d %v", sum, err)
	}
}

func TestSubmissionDuringABrokerRestartIsSentAgainAndRuns(t *testing.T) {
	dir := t.TempDir()
	ctx := frayt.Context(t, 60*time.Second)
	srv, err := broker.Start(ctx, broker.Options{StoreDir: dir, Port: -1}) // the restart asks for its port again
	if err != nil {
		t.Fatal(err)
	}
	port := srv.NATS().Addr().(*net.TCPAddr).Port
	nc, js := frayt.Connect(t, srv.ClientURL())
	if err := broker.Provision(ctx, js, nc.ConnectedServerVersion(), broker.ProvisionOptions{}); err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, srv.ClientURL())
	p := e.producer()
	// The broker goes away; a submission made now finds no JetStream.
	srv.Shutdown()
	f := p.Submit(ctx, "add", [2]int{20, 22})
	srv2, err := broker.Start(ctx, broker.Options{StoreDir: dir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv2.Shutdown)
	// The directory's maintainer stops first (clean-ups run last first):
	// stopping its watches once the broker is gone waits out a 5 s request.
	t.Cleanup(e.stopDirectory)
	if err := f.Queued(ctx); err != nil {
		t.Fatalf("submission across the restart: %v, want it queued once the broker is back", err)
	}
	e.executor("w-after", basicRegistry(), nil)
	var sum int
	if err := f.Get(ctx, &sum); err != nil || sum != 42 {
		t.Fatalf("result: %d %v", sum, err)
	}
}

// A submission to a pool without a live worker is queued all the same (a
// worker may start), and the producer says so once per pool, so that a
// mistyped pool does not wait in silence.
func TestAPoolWithoutWorkersIsNamedOnce(t *testing.T) {
	e := newEnv(t)
	e.executor("w1", basicRegistry(), nil)
	var logged frayt.SyncBuffer
	nc, js := frayt.Connect(t, e.url)
	ctx := frayt.Context(t, 10*time.Second)
	p, err := tasks.NewProducer(ctx, nc, tasks.ProducerOptions{Objects: e.store(js, 0),
		Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for range 2 {
		if err := p.Submit(ctx, "add", [2]int{1, 2}, tasks.Pool("empty")).Queued(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var sum int
	if err := p.Submit(ctx, "add", [2]int{1, 2}).Get(ctx, &sum); err != nil || sum != 3 {
		t.Fatalf("default pool: %d, %v", sum, err)
	}
	out := logged.String()
	if strings.Count(out, "no live workers") != 1 || !strings.Contains(out, "pool=empty") {
		t.Fatalf("log:\n%s\nwant one line saying pool empty has no live workers", out)
	}
}
