package tasks_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/tasks"
	"github.com/nats-io/nats.go/jetstream"
)

// gatedTasks registers "quick" (returns at once), "slow" (sleeps its
// argument in milliseconds) and "gated" (waits for the gate, then returns
// its worker), and counts the runs of each argument of "gated".
type gatedTasks struct {
	reg      *tasks.Registry
	gate     chan struct{}
	started  chan int
	once     sync.Once
	mu       sync.Mutex
	runs     map[int]int
	attempts map[int]int // the attempt number of each gated task's last run
}

// open lets the gated task return.
func (g *gatedTasks) open() { g.once.Do(func() { close(g.gate) }) }

// ranOnce fails t unless each gated task 0..n-1 ran exactly once, as its
// first attempt: a hand-back does not count as one.
func (g *gatedTasks) ranOnce(t *testing.T, n int) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range n {
		if g.runs[i] != 1 || g.attempts[i] != 1 {
			t.Fatalf("task %d ran %d times, last as attempt %d; want once, as attempt 1", i, g.runs[i], g.attempts[i])
		}
	}
}

func newGatedTasks(t *testing.T) *gatedTasks {
	g := &gatedTasks{reg: tasks.NewRegistry(), gate: make(chan struct{}), started: make(chan int, 100), runs: map[int]int{}, attempts: map[int]int{}}
	tasks.Register(g.reg, "quick", func(context.Context, int) (int, error) { return 0, nil })
	tasks.Register(g.reg, "slow", func(_ context.Context, ms int) (int, error) {
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return 0, nil
	})
	tasks.Register(g.reg, "gated", func(ctx context.Context, i int) (string, error) {
		ti, _ := tasks.CurrentTask(ctx)
		g.mu.Lock()
		g.runs[i]++
		g.attempts[i] = ti.Attempt
		g.mu.Unlock()
		g.started <- i
		if i == 0 {
			select {
			case <-g.gate:
			case <-ctx.Done(): // the executor stops (a test failed before opening the gate)
				return "", ctx.Err()
			}
		}
		return ti.Worker, nil
	})
	t.Cleanup(g.open)
	return g
}

// consumerState is the pool consumer's counts: messages delivered and not
// acked, messages still queued, and open pull requests.
func consumerState(t *testing.T, js jetstream.JetStream) (ackPending int, pending uint64, waiting int) {
	t.Helper()
	ctx := frayt.Context(t, 5*time.Second)
	cons, err := js.Consumer(ctx, broker.StreamTasks, taskwire.ConsumerName(tasks.DefaultPool))
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.NumAckPending, info.NumPending, info.NumWaiting
}

// run submits fn(arg) n times, one after the other, and waits for each.
func run(t *testing.T, p *tasks.Producer, fn string, arg, n int) {
	t.Helper()
	ctx := frayt.Context(t, 20*time.Second)
	for range n {
		if err := p.Submit(ctx, fn, arg).Get(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// behindTheGate submits gated task 0, waits until it runs, then submits
// gated tasks 1..n: the futures of all, in order.
func (g *gatedTasks) behindTheGate(ctx context.Context, p *tasks.Producer, n int) []*tasks.Future {
	futs := []*tasks.Future{p.Submit(ctx, "gated", 0)}
	<-g.started
	for i := 1; i <= n; i++ {
		futs = append(futs, p.Submit(ctx, "gated", i))
	}
	return futs
}

// waitDelivered waits until the pool consumer has delivered n messages
// that are not acked yet.
func waitDelivered(t *testing.T, js jetstream.JetStream, n int) {
	t.Helper()
	frayt.Eventually(t, 5*time.Second, fmt.Sprintf("%d tasks delivered", n), func() bool {
		ackPending, _, _ := consumerState(t, js)
		return ackPending == n
	})
}

// wantNotAsked waits until n tasks are queued and one is delivered (the
// acks of tasks run before it may still be on their way), then checks that
// the one worker holds only its one running task and asks for nothing
// more.
func wantNotAsked(t *testing.T, js jetstream.JetStream, n uint64) {
	t.Helper()
	frayt.Eventually(t, 5*time.Second, fmt.Sprintf("%d tasks queued, 1 delivered", n), func() bool {
		ackPending, pending, _ := consumerState(t, js)
		return pending == n && ackPending == 1
	})
	if ackPending, pending, waiting := consumerState(t, js); ackPending != 1 || pending != n || waiting != 0 {
		t.Fatalf("ack pending %d, pending %d, open requests %d: want 1 running, %d queued and no request", ackPending, pending, waiting, n)
	}
}

// wantOn waits for each future and checks that worker ran it.
func wantOn(ctx context.Context, t *testing.T, worker string, futs ...*tasks.Future) {
	t.Helper()
	for _, f := range futs {
		var w string
		if err := f.Get(ctx, &w); err != nil || (worker != "" && w != worker) {
			t.Fatalf("a task finished on %q, %v; want it on %q", w, err, worker)
		}
	}
}

// prefetchRig is worker "a" of one slot, prefetching up to 3 tasks (mod
// may change its options further), serving gatedTasks, with a producer
// and a connection to look at the pool's consumer. Its prefetch window is
// a second, so that tasks taking microseconds (or, on a loaded machine
// under the race detector, a millisecond or two) all count as short.
type prefetchRig struct {
	e     *env
	g     *gatedTasks
	a     *tasks.Executor
	stopA func()
	p     *tasks.Producer
	ctx   context.Context
	js    jetstream.JetStream
}

func newPrefetchRig(t *testing.T, mod func(*tasks.ExecutorOptions)) *prefetchRig {
	r := &prefetchRig{e: newEnv(t), g: newGatedTasks(t), ctx: frayt.Context(t, 20*time.Second)}
	r.a, r.stopA = r.e.executor("a", r.g.reg, func(o *tasks.ExecutorOptions) {
		o.Concurrency, o.Prefetch = 1, 3
		tasks.SetPrefetchWindow(o, time.Second)
		if mod != nil {
			mod(o)
		}
	})
	r.p = r.e.producer()
	_, r.js = frayt.Connect(t, r.e.url)
	return r
}

// While tasks are short, a prefetching executor holds tasks beyond its
// slots, so a slot that frees starts the next without asking the server.
func TestAPrefetchingExecutorHoldsShortTasksBeyondItsSlots(t *testing.T) {
	r := newPrefetchRig(t, nil)
	run(t, r.p, "quick", 0, 20) // the pace: tasks take microseconds
	futs := r.g.behindTheGate(r.ctx, r.p, 5)
	frayt.Eventually(t, 5*time.Second, "3 tasks held and 1 running", func() bool {
		return r.a.Held() == 3 && r.a.Running() == 1
	})
	waitDelivered(t, r.js, 4)
	r.g.open()
	wantOn(r.ctx, t, "a", futs...)
	r.g.ranOnce(t, 6)
}

// Once tasks take longer than the prefetch window, a prefetching executor
// holds no task beyond its slots: it does not even ask for one.
func TestAPrefetchingExecutorHoldsNothingExtraWhileTasksAreLong(t *testing.T) {
	r := newPrefetchRig(t, func(o *tasks.ExecutorOptions) { tasks.SetPrefetchWindow(o, 5*time.Millisecond) })
	run(t, r.p, "slow", 50, 1) // the pace: 50 ms a task, ten times the window
	futs := r.g.behindTheGate(r.ctx, r.p, 3)
	wantNotAsked(t, r.js, 3)
	r.g.open()
	wantOn(r.ctx, t, "a", futs...)
}

// A held task that waits too long behind a task much longer than the pace
// is handed back, and another worker runs it, once.
func TestAHeldTaskStuckBehindALongOneIsHandedBack(t *testing.T) {
	r := newPrefetchRig(t, func(o *tasks.ExecutorOptions) { tasks.SetHoldLimit(o, 200*time.Millisecond) })
	run(t, r.p, "quick", 0, 20)
	futs := r.g.behindTheGate(r.ctx, r.p, 3)
	waitDelivered(t, r.js, 4)
	_, stopB := r.e.executor("b", r.g.reg, nil)
	wantOn(r.ctx, t, "b", futs[1:]...)
	if r.a.Running() != 1 {
		t.Fatalf("a runs %d tasks, want the gated one still running", r.a.Running())
	}
	// Having had to hand tasks back, a prefetches nothing more for now.
	stopB()
	for i := 4; i <= 6; i++ {
		futs = append(futs, r.p.Submit(r.ctx, "gated", i))
	}
	wantNotAsked(t, r.js, 3)
	r.g.open()
	wantOn(r.ctx, t, "", futs...)
	r.g.ranOnce(t, 7)
}

// A draining worker hands its held tasks back at once: they do not wait
// for its running tasks.
func TestADrainHandsHeldTasksBackAtOnce(t *testing.T) {
	r := newPrefetchRig(t, func(o *tasks.ExecutorOptions) {
		o.DrainTimeout = time.Hour
		tasks.SetHoldLimit(o, time.Hour)
	})
	run(t, r.p, "quick", 0, 20)
	futs := r.g.behindTheGate(r.ctx, r.p, 3)
	waitDelivered(t, r.js, 4)
	stopped := make(chan struct{})
	go func() { r.stopA(); close(stopped) }()
	r.e.executor("b", r.g.reg, nil)
	wantOn(r.ctx, t, "b", futs[1:]...)
	r.g.open()
	<-stopped
	wantOn(r.ctx, t, "a", futs[0])
}

// A hand-back uses up neither a delivery nor a retry of the task: one
// allowed a single delivery still runs, on the worker that handed it back
// once that worker's slot is free, as its first attempt.
func TestAHandedBackTaskKeepsItsDeliveriesAndRetries(t *testing.T) {
	r := newPrefetchRig(t, func(o *tasks.ExecutorOptions) { tasks.SetHoldLimit(o, 200*time.Millisecond) })
	run(t, r.p, "quick", 0, 20)
	futs := []*tasks.Future{r.p.Submit(r.ctx, "gated", 0)}
	<-r.g.started
	futs = append(futs, r.p.Submit(r.ctx, "gated", 1, tasks.MaxDeliveries(1)))
	waitDelivered(t, r.js, 2)
	wantNotAsked(t, r.js, 1) // handed back: queued again, and a asks for nothing more
	r.g.open()
	wantOn(r.ctx, t, "a", futs...)
	r.g.ranOnce(t, 2)
}
