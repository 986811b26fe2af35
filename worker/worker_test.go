package worker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/tasks"
	"github.com/frayhq/fray/worker"
	"github.com/nats-io/nats.go/jetstream"
)

func startWorker(t *testing.T, url string, o worker.Options) (*worker.Worker, func()) {
	t.Helper()
	nc, _ := frayt.Connect(t, url)
	w, err := worker.New(nc, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker run: %v", err)
		}
	}
	t.Cleanup(stop)
	return w, stop
}

func producer(t *testing.T, url string) *tasks.Producer {
	nc, js := frayt.Connect(t, url)
	store, err := objects.New(context.Background(), js, objects.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := tasks.NewProducer(frayt.Context(t, 10*time.Second), nc, tasks.ProducerOptions{Objects: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestWorkerRegistersUnderLeaseAndDeregistersOnStop(t *testing.T) {
	srv := frayt.Server(t)
	_, js := frayt.Connect(t, srv.ClientURL())
	ctx := frayt.Context(t, 20*time.Second)
	w, stop := startWorker(t, srv.ClientURL(), worker.Options{ID: "w-reg", Pool: "gpu", Concurrency: 3,
		Attributes: map[string]string{"region": "us-east1", "preemptible": "false"}, LeaseTTL: time.Second})
	kv, _ := js.KeyValue(ctx, broker.BucketWorkers)
	var info broker.WorkerInfo
	frayt.Eventually(t, 5*time.Second, "worker record appears", func() bool {
		e, err := kv.Get(ctx, "w-reg")
		return err == nil && objects.Unmarshal(e.Value(), &info) == nil
	})
	if info.Pool != "gpu" || info.Concurrency != 3 || info.Attributes["region"] != "us-east1" || info.V != broker.WorkerInfoVersion {
		t.Fatalf("record: %+v", info)
	}
	if !strings.Contains(strings.Join(info.Handlers, ","), worker.FnSleep) {
		t.Fatalf("handlers %v lack the built-ins", info.Handlers)
	}
	// The lease is renewed past several TTLs while the worker lives.
	first, _ := kv.Get(ctx, "w-reg")
	frayt.Eventually(t, 5*time.Second, "lease renewed", func() bool {
		e, err := kv.Get(ctx, "w-reg")
		return err == nil && e.Revision() > first.Revision()+2
	})
	_ = w
	stop()
	if _, err := kv.Get(ctx, "w-reg"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("after stop: %v, want the entry gone", err)
	}
}

func TestBuiltinsServeEchoAndSleep(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), worker.Options{ID: "w1"})
	p := producer(t, srv.ClientURL())
	ctx := frayt.Context(t, 10*time.Second)
	var echo map[string]any
	if err := p.Submit(ctx, worker.FnEcho, map[string]any{"a": "b"}).Get(ctx, &echo); err != nil || echo["a"] != "b" {
		t.Fatalf("echo: %v %v", echo, err)
	}
	var slept float64
	if err := p.Submit(ctx, worker.FnSleep, 0.01).Get(ctx, &slept); err != nil || slept != 0.01 {
		t.Fatalf("sleep: %v %v", slept, err)
	}
	if err := p.Submit(ctx, worker.FnSleep, -1).Get(ctx, nil); err == nil {
		t.Fatal("sleep -1 succeeded")
	}
	if err := p.Submit(ctx, worker.FnNoop, nil).Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

func TestExecHandlerSpeaksJSONAndReportsFailures(t *testing.T) {
	srv := frayt.Server(t)
	reg := tasks.NewRegistry()
	must(t, reg.Handle("double", worker.ExecHandler(`read x; echo $((x * 2))`)))
	must(t, reg.Handle("obj", worker.ExecHandler(`cat >/dev/null; echo '{"ok": true, "task": "'$FRAY_TASK_FN'"}'`)))
	must(t, reg.Handle("boom", worker.ExecHandler(`echo "partial output"; echo "something broke: disk full" >&2; exit 3`)))
	must(t, reg.Handle("notjson", worker.ExecHandler(`echo not json`)))
	must(t, reg.Handle("slow", worker.ExecHandler(`sleep 30`)))
	startWorker(t, srv.ClientURL(), worker.Options{ID: "w-exec", Registry: reg})
	p := producer(t, srv.ClientURL())
	ctx := frayt.Context(t, 20*time.Second)

	var n int
	if err := p.Submit(ctx, "double", 21).Get(ctx, &n); err != nil || n != 42 {
		t.Fatalf("double: %d %v", n, err)
	}
	var obj map[string]any
	if err := p.Submit(ctx, "obj", nil).Get(ctx, &obj); err != nil || obj["ok"] != true || obj["task"] != "obj" {
		t.Fatalf("obj: %v %v", obj, err)
	}
	err := p.Submit(ctx, "boom", nil).Get(ctx, nil)
	var re *tasks.RemoteError
	if !errors.As(err, &re) || re.Type != "*worker.ExecError" || !strings.Contains(re.Message, "status 3") || !strings.Contains(re.Message, "disk full") {
		t.Fatalf("boom: %v, want an ExecError with status 3 and the stderr tail", err)
	}
	if err := p.Submit(ctx, "notjson", nil).Get(ctx, nil); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Fatalf("notjson: %v", err)
	}
	start := time.Now()
	if err := p.Submit(ctx, "slow", nil, tasks.Timeout(200*time.Millisecond)).Get(ctx, nil); !errors.Is(err, tasks.ErrTimeout) {
		t.Fatalf("slow: %v, want ErrTimeout", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("timeout took %s: the command was not killed", time.Since(start))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	srv := frayt.Server(t)
	nc, _ := frayt.Connect(t, srv.ClientURL())
	for name, o := range map[string]worker.Options{
		"bad pool":    {Pool: "a.b"},
		"negative":    {Concurrency: -1},
		"short lease": {LeaseTTL: 10 * time.Millisecond},
		"bad id":      {ID: "a b"},
		"short ack":   {AckWait: 10 * time.Millisecond},
		"drain < 0":   {DrainTimeout: -time.Second},
	} {
		if _, err := worker.New(nc, o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestWorkerKeepsItsRegistrationWhenARenewalsAckIsLost(t *testing.T) {
	srv := frayt.Server(t)
	_, js := frayt.Connect(t, srv.ClientURL())
	ctx := frayt.Context(t, 20*time.Second)
	nc, _ := frayt.Connect(t, srv.ClientURL())
	w, err := worker.New(nc, worker.Options{ID: "w-ack", LeaseTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker run: %v", err)
		}
	}()
	kv, _ := js.KeyValue(ctx, broker.BucketWorkers)
	var e jetstream.KeyValueEntry
	frayt.Eventually(t, 5*time.Second, "worker registered", func() bool {
		e, err = kv.Get(ctx, "w-ack")
		return err == nil
	})
	// A renewal the broker stored but whose PubAck never reached the
	// worker looks like this: the worker's own record at a revision it does
	// not know.
	rev, err := kv.Put(ctx, "w-ack", e.Value())
	if err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 5*time.Second, "the worker renews its lease again", func() bool {
		select {
		case err := <-done:
			done <- err // for the deferred stop
			t.Fatalf("worker stopped: %v", err)
		default:
		}
		cur, err := kv.Get(ctx, "w-ack")
		return err == nil && cur.Revision() > rev+1
	})
}

func TestExecHandlerReturnsWhenTheCommandExitsThoughABackgroundChildKeepsItsOutputOpen(t *testing.T) {
	h := worker.ExecHandler(`sleep 30 & echo 42`)
	ctx := frayt.Context(t, 20*time.Second)
	start := time.Now()
	v, err := h(ctx, nil)
	if err != nil || v != int64(42) {
		t.Fatalf("got %v (%T), %v; want 42", v, v, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("returned after %s: it waited for the background child", d)
	}
}

// Two processes must not serve under one id: a worker whose registry key
// now holds another process's record (or one it cannot read) stops with an
// error saying so, instead of fighting over the key.
func TestWorkerStopsWhenAnotherProcessHoldsItsID(t *testing.T) {
	for name, foreign := range map[string]func(own []byte) []byte{
		"another worker's record": func(own []byte) []byte {
			var info broker.WorkerInfo
			if err := objects.Unmarshal(own, &info); err != nil {
				t.Fatal(err)
			}
			info.PID++
			b, _ := objects.Marshal(info)
			return b
		},
		"an unreadable record": func([]byte) []byte { return []byte{0xff, 0x00} },
	} {
		t.Run(name, func(t *testing.T) {
			srv := frayt.Server(t)
			_, js := frayt.Connect(t, srv.ClientURL())
			ctx := frayt.Context(t, 20*time.Second)
			nc, _ := frayt.Connect(t, srv.ClientURL())
			w, err := worker.New(nc, worker.Options{ID: "w-twice", LeaseTTL: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			kv, _ := js.KeyValue(ctx, broker.BucketWorkers)
			var e jetstream.KeyValueEntry
			frayt.Eventually(t, 5*time.Second, "worker registered", func() bool {
				e, err = kv.Get(ctx, "w-twice")
				return err == nil
			})
			if _, err := kv.Put(ctx, "w-twice", foreign(e.Value())); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "another live worker registered the same id") {
					t.Fatalf("worker stopped with %v", err)
				}
			case <-ctx.Done():
				t.Fatal("the worker kept running under an id another process holds")
			}
		})
	}
}
