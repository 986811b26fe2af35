package tasks_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/tasks"
	"github.com/nats-io/nats-server/v2/server"
)

// parkingPool starts len(draws) executors of the default pool, with slots
// slots each, wanting keepers keepers, after the pool's directory lists
// them all (so each knows the pool's size from its start). Executor i
// draws draws[i] (its place in the pool, see tasks.SetParking) and serves
// "who" (its index, after sleeping the given milliseconds) and "block"
// (its index: it says so on started, then waits for release to close).
//
// settled reports whether only the keepers' requests wait on the pool's
// consumer and every other worker is parked (listens for wakes).
func parkingPool(t *testing.T, keepers, slots int, draws []float64, started chan<- int, release <-chan struct{}) (e *env, settled func() bool) {
	t.Helper()
	srv := frayt.Server(t)
	e = startEnv(t, srv.ClientURL())
	n := len(draws)
	var next atomic.Int32
	tasks.SetParking(t, keepers, keepers+1, 300*time.Millisecond, func() float64 { return draws[next.Add(1)-1] })
	_, js := frayt.Connect(t, e.url)
	kv, err := js.KeyValue(context.Background(), broker.BucketWorkers)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		info, _ := objects.Marshal(broker.WorkerInfo{V: 1, ID: fmt.Sprint("w", i), Pool: tasks.DefaultPool, Handlers: []string{"block", "who"}, Concurrency: slots})
		if _, err := kv.Put(context.Background(), fmt.Sprint("w", i), info); err != nil {
			t.Fatal(err)
		}
	}
	e.waitListed(js, tasks.DefaultPool, n, nil)
	for i := range n {
		reg := tasks.NewRegistry()
		tasks.Register(reg, "who", func(ctx context.Context, sleepMS int) (int, error) {
			time.Sleep(time.Duration(sleepMS) * time.Millisecond)
			return i, nil
		})
		tasks.Register(reg, "block", func(ctx context.Context, _ struct{}) (int, error) {
			started <- i
			select {
			case <-release:
			case <-ctx.Done(): // the executor stops: the test failed before releasing it
			}
			return i, nil
		})
		// Made one after another, so executor i draws draws[i].
		e.executor(fmt.Sprint("w", i), reg, func(o *tasks.ExecutorOptions) { o.Concurrency = slots })
	}
	return e, func() bool {
		c, err := js.Consumer(context.Background(), broker.StreamTasks, taskwire.ConsumerName(tasks.DefaultPool))
		if err != nil || c.CachedInfo().NumWaiting != keepers {
			return false
		}
		subs, err := srv.NATS().Subsz(&server.SubszOptions{Subscriptions: true, Limit: 1 << 10, Test: broker.SubjectWakePrefix + tasks.DefaultPool})
		return err == nil && len(subs.Subs) == n-keepers
	}
}

// A pool larger than the parking threshold: only its keepers hold pull
// requests while idle, so a task on the idle pool runs on a keeper; a
// burst wakes the parked workers, which park again once it is over.
func TestALargeIdlePoolKeepsOnlyItsKeepersPulling(t *testing.T) {
	ctx := frayt.Context(t, 60*time.Second)
	// 8 workers, 2 keepers wanted: those drawing below 2/8 keep (w0, w1).
	e, settled := parkingPool(t, 2, 2, []float64{0, 0.2, 0.3, 0.45, 0.6, 0.7, 0.8, 0.95}, nil, nil)
	frayt.Eventually(t, 10*time.Second, "only the 2 keepers pull; the 6 others are parked", settled)

	p := e.producer()
	for range 20 {
		var who int
		if err := p.Submit(ctx, "who", 0).Get(ctx, &who); err != nil {
			t.Fatal(err)
		}
		if who > 1 {
			t.Fatalf("a task on the idle pool ran on w%d, a parked worker", who)
		}
	}
	if !settled() {
		t.Fatal("tasks one at a time woke parked workers")
	}

	// A burst: 60 tasks of 100 ms, more than the keepers' 4 slots take.
	futs := make([]*tasks.Future, 60)
	for i := range futs {
		futs[i] = p.Submit(ctx, "who", 100)
	}
	ran := map[int]bool{}
	for _, f := range futs {
		var who int
		if err := f.Get(ctx, &who); err != nil {
			t.Fatal(err)
		}
		ran[who] = true
	}
	if len(ran) < 6 {
		t.Fatalf("the burst ran on %d of 8 workers, want the parked ones woken too", len(ran))
	}
	// They park again: tasks one at a time run on the keepers alone.
	frayt.Eventually(t, 10*time.Second, "the woken workers park again", func() bool {
		for range 10 {
			var who int
			if err := p.Submit(ctx, "who", 0).Get(ctx, &who); err != nil || who > 1 {
				return false
			}
		}
		return true
	})
}

// The keeper busy with a long task: a parked worker is woken to hold a
// request, so the next task runs at once rather than after the long one.
func TestABusyKeeperWakesAParkedWorkerForTheNextTask(t *testing.T) {
	ctx := frayt.Context(t, 60*time.Second)
	started, release := make(chan int, 1), make(chan struct{})
	defer close(release)
	// 3 one-slot workers, 1 keeper wanted: w0 alone draws below 1/3.
	e, settled := parkingPool(t, 1, 1, []float64{0, 0.5, 0.9}, started, release)
	frayt.Eventually(t, 10*time.Second, "only the keeper pulls; the 2 others are parked", settled)

	p := e.producer()
	long := p.Submit(ctx, "block", struct{}{})
	select {
	case who := <-started:
		if who != 0 {
			t.Fatalf("the long task started on w%d, not on the keeper", who)
		}
	case <-ctx.Done():
		t.Fatal("the long task never started")
	}
	// Nothing holds a request now (the keeper's was filled, the others
	// are parked) but what the busy keeper wakes.
	var who int
	if err := p.Submit(ctx, "who", 0).Get(ctx, &who); err != nil {
		t.Fatalf("the task after the keeper's long one: %v", err)
	}
	if who == 0 {
		t.Fatal("the quick task ran on the keeper, which the long one occupies")
	}
	select {
	case <-long.Done():
		t.Fatal("the long task ended before it was released")
	default:
	}
}

// In a pool whose workers serve different functions, a task only parked
// workers serve is handed on by the keeper that took it, and the hand-on
// wakes a parked worker to run it.
func TestATaskOnlyParkedWorkersServeIsHandedOnToAWokenOne(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	srv := frayt.Server(t)
	e := startEnv(t, srv.ClientURL())
	draws := []float64{0, 0.5, 0.6, 0.9} // 1 keeper wanted of 4: w0
	var next atomic.Int32
	tasks.SetParking(t, 1, 2, 300*time.Millisecond, func() float64 { return draws[next.Add(1)-1] })
	_, js := frayt.Connect(t, e.url)
	kv, err := js.KeyValue(ctx, broker.BucketWorkers)
	if err != nil {
		t.Fatal(err)
	}
	fn := func(i int) string { return map[bool]string{true: "keeper-only", false: "parked-only"}[i == 0] }
	for i := range draws {
		info, _ := objects.Marshal(broker.WorkerInfo{V: 1, ID: fmt.Sprint("w", i), Pool: tasks.DefaultPool, Handlers: []string{fn(i)}, Concurrency: 1 + max(0, 1-i)})
		if _, err := kv.Put(ctx, fmt.Sprint("w", i), info); err != nil {
			t.Fatal(err)
		}
	}
	e.waitListed(js, tasks.DefaultPool, len(draws), []string{"keeper-only", "parked-only"})
	for i := range draws {
		reg := tasks.NewRegistry()
		tasks.Register(reg, fn(i), func(context.Context, struct{}) (int, error) { return i, nil })
		// The keeper has a slot to spare while it hands the task on, so
		// its tick (a busy keeper's wake) does not come into it.
		e.executor(fmt.Sprint("w", i), reg, func(o *tasks.ExecutorOptions) { o.Concurrency = 1 + max(0, 1-i) })
	}
	frayt.Eventually(t, 10*time.Second, "the 3 workers without the keeper's function are parked", func() bool {
		subs, err := srv.NATS().Subsz(&server.SubszOptions{Subscriptions: true, Limit: 1 << 10, Test: broker.SubjectWakePrefix + tasks.DefaultPool})
		return err == nil && len(subs.Subs) == 3
	})
	p := e.producer()
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var who int
	if err := p.Submit(ctx, "parked-only", struct{}{}).Get(gctx, &who); err != nil || who == 0 {
		t.Fatalf("the task ran on w%d, %v; want it handed on to a woken parked worker within 5 s", who, err)
	}
}

// A worker whose credentials may not listen for wakes (written by a fray
// auth init older than parking) never parks: it keeps a request open, as
// in a small pool, rather than wait for a wake it would never hear.
func TestAWorkerRefusedTheWakeSubjectKeepsARequestOpen(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte(`authorization {
  users = [
    {user: admin, password: a}
    {user: old, password: o, permissions: {publish: ">", subscribe: {allow: ">", deny: "fray.wake.>"}}}
  ]
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := broker.Start(ctx, broker.Options{StoreDir: filepath.Join(dir, "store"), Port: -1, ConfigFile: conf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	url := func(user, pass string) string {
		return strings.Replace(srv.ClientURL(), "nats://", "nats://"+user+":"+pass+"@", 1)
	}
	nc, js := frayt.Connect(t, url("admin", "a"))
	if err := broker.Provision(ctx, js, nc.ConnectedServerVersion(), broker.ProvisionOptions{}); err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, url("old", "o"))
	tasks.SetParking(t, 1, 2, 300*time.Millisecond, func() float64 { return 0.9 }) // all parkers, were they allowed
	kv, err := js.KeyValue(ctx, broker.BucketWorkers)
	if err != nil {
		t.Fatal(err)
	}
	reg := tasks.NewRegistry()
	tasks.Register(reg, "who", func(ctx context.Context, _ struct{}) (string, error) {
		ti, _ := tasks.CurrentTask(ctx)
		return ti.Worker, nil
	})
	for i := range 3 {
		info, _ := objects.Marshal(broker.WorkerInfo{V: 1, ID: fmt.Sprint("w", i), Pool: tasks.DefaultPool, Handlers: reg.Names(), Concurrency: 1})
		if _, err := kv.Put(ctx, fmt.Sprint("w", i), info); err != nil {
			t.Fatal(err)
		}
	}
	e.waitListed(js, tasks.DefaultPool, 3, nil)
	logs := &frayt.SyncBuffer{}
	for i := range 3 {
		e.executor(fmt.Sprint("w", i), reg, func(o *tasks.ExecutorOptions) {
			o.Concurrency = 1
			o.Logger = slog.New(slog.NewTextHandler(logs, nil))
		})
	}
	// Each tried to park once its first request ended, and was refused.
	frayt.Eventually(t, 10*time.Second, "the 3 workers are refused the wake subject", func() bool {
		return strings.Count(logs.String(), "may not listen for wakes") == 3
	})
	frayt.Eventually(t, 10*time.Second, "all 3 workers keep a request open", func() bool {
		c, err := js.Consumer(ctx, broker.StreamTasks, taskwire.ConsumerName(tasks.DefaultPool))
		return err == nil && c.CachedInfo().NumWaiting == 3
	})
	p := e.producer()
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.Submit(ctx, "who", struct{}{}).Get(gctx, new(string)); err != nil {
		t.Fatalf("a task on the pool: %v", err)
	}
}
