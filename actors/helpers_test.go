package actors

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const testTTL = 1500 * time.Millisecond

func TestMain(m *testing.M) {
	if os.Getenv(raceChildEnv) != "" {
		os.Exit(raceChild())
	}
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		code = checkGoroutines(before)
	}
	os.Exit(code)
}

// checkGoroutines fails the run when goroutines started by the tests are
// still running 5 s after the last test (every one must have an exit).
func checkGoroutines(before int) int {
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			fmt.Fprintf(os.Stderr, "goroutine leak: %d running, %d before the tests:\n%s\n", runtime.NumGoroutine(), before, buf[:n])
			return 1
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0
}

// testWorker is an in-process stand-in for a fray-worker: a WorkerInfo in
// FRAY_WORKERS and a Host on its own connection.
type testWorker struct {
	id     string
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan struct{}
}

func testRegistry(t testing.TB) *Registry {
	reg := NewRegistry()
	if err := RegisterBuiltins(reg); err != nil {
		t.Fatal(err)
	}
	return reg
}

func startWorker(t testing.TB, url, id string, attrs map[string]string, reg *Registry) *testWorker {
	t.Helper()
	nc, js := frayt.Connect(t, url)
	info := &broker.WorkerInfo{V: 1, ID: id, Pool: "default", Attributes: attrs, Concurrency: 1}
	host := NewHost(reg, HostOptions{LeaseTTL: testTTL})
	host.Describe(info)
	ctx := frayt.Context(t, time.Minute)
	kv, err := js.KeyValue(ctx, broker.BucketWorkers)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := objects.Marshal(info)
	if _, err := kv.Put(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	w := &testWorker{id: id, nc: nc, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		if err := host.Run(rctx, nc, js, info); err != nil {
			t.Errorf("host %s: %v", id, err)
		}
	}()
	// Ready once the host's placement subscription answers.
	frayt.Eventually(t, 5*time.Second, "host "+id+" subscribed", func() bool {
		_, err := nc.Request(hostSubject(id), []byte{0xff}, time.Second)
		return err == nil
	})
	t.Cleanup(func() { w.stop() })
	return w
}

func (w *testWorker) stop() {
	w.cancel()
	<-w.done
}

// kill simulates SIGKILL: the connection drops (subscriptions vanish,
// renewals stop) and the worker's registry record goes.
func (w *testWorker) kill(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	w.nc.Close()
	kv, err := js.KeyValue(context.Background(), broker.BucketWorkers)
	if err != nil {
		t.Fatal(err)
	}
	_ = kv.Delete(context.Background(), w.id)
}

func newClient(t testing.TB, url string, opts ...ClientOptions) *Client {
	t.Helper()
	nc, js := frayt.Connect(t, url)
	var o ClientOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.PlacementTimeout == 0 {
		o.PlacementTimeout = 3 * time.Second
	}
	c, err := NewClient(frayt.Context(t, 10*time.Second), nc, js, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func startSupervisor(t testing.TB, url string) {
	t.Helper()
	runSupervisor(t, url, SupervisorOptions{PlacementTimeout: 5 * time.Second})
}

// runSupervisor runs a supervisor on its own connection until the returned
// stop is called (or the test ends), as fray-broker runs one.
func runSupervisor(t testing.TB, url string, o SupervisorOptions) (stop func()) {
	t.Helper()
	nc, js := frayt.Connect(t, url)
	s := NewSupervisor(nc, js, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			t.Errorf("supervisor: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done; nc.Close() }) }
	t.Cleanup(stop)
	return stop
}

func call[R any](t testing.TB, ctx context.Context, h *Handle, method string, arg any) R {
	t.Helper()
	var r R
	if err := h.Call(ctx, method, arg).Get(ctx, &r); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return r
}
