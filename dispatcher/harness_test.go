package dispatcher_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/dispatcher/internal/dispatchtest"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// cluster is an in-process broker, a dispatcher and fake workers (a lease in
// FRAY_WORKERS plus a real job runner each).
type cluster struct {
	t   *testing.T
	url string
	nc  *nats.Conn
	js  jetstream.JetStream
	jc  *jobs.Client
	ctx context.Context
	mu  sync.Mutex
	ws  map[string]*fakeWorker

	opts           dispatcher.Options
	stopDispatcher func()
}

type fakeWorker struct {
	id          string
	stopLease   context.CancelFunc
	leasePaused *atomic.Bool // renewals skipped while set
	stopRunner  context.CancelFunc
	done        chan struct{}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newCluster(t *testing.T, o dispatcher.Options) *cluster {
	t.Helper()
	srv := frayt.Server(t)
	c := &cluster{t: t, url: srv.ClientURL(), ctx: frayt.Context(t, 2*time.Minute), ws: map[string]*fakeWorker{}}
	c.nc, c.js = frayt.Connect(t, c.url)
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	if o.StartupGrace == 0 {
		o.StartupGrace = time.Millisecond
	}
	c.opts = o
	c.stopDispatcher = c.startDispatcher(o)
	var err error
	c.jc, err = jobs.NewClient(c.ctx, c.nc, c.js, jobs.ClientOptions{Namespace: "test", Parent: "-"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *cluster) startDispatcher(o dispatcher.Options) func() {
	c.t.Helper()
	return dispatchtest.Run(c.t, c.url, o)
}

// addWorker registers a worker with cpu cores and attributes and runs a job
// runner for it.
func (c *cluster) addWorker(id string, cpu float64, attrs map[string]string, ro ...jobs.RunnerOptions) *fakeWorker {
	c.t.Helper()
	var o jobs.RunnerOptions
	if len(ro) > 0 {
		o = ro[0]
	}
	o.CPU = cpu
	if o.Grace == 0 {
		o.Grace = 2 * time.Second
	}
	o.Logger = quietLogger()
	r, err := jobs.NewRunner(o)
	if err != nil {
		c.t.Fatal(err)
	}
	info := broker.WorkerInfo{V: broker.WorkerInfoVersion, ID: id, Host: "test", Pool: "default", Attributes: attrs, Concurrency: 1, StartedMS: jobwire.NowMS()}
	r.Describe(&info)
	nc, js := frayt.Connect(c.t, c.url)
	stopLease, paused := c.registerPausable(js, &info)
	rctx, stopRunner := context.WithCancel(context.Background())
	w := &fakeWorker{id: id, stopLease: stopLease, leasePaused: paused, stopRunner: stopRunner, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		_ = r.Run(rctx, nc, js, &info)
	}()
	c.t.Cleanup(func() { stopLease(); stopRunner(); <-w.done })
	c.mu.Lock()
	c.ws[id] = w
	c.mu.Unlock()
	return w
}

// addSilentWorker registers a worker that advertises cpu cores of job
// capacity but runs no job runner, as an older fray worker hosting only
// actors did: nothing ever starts the jobs placed on it.
func (c *cluster) addSilentWorker(id string, cpu float64) {
	c.t.Helper()
	info := broker.WorkerInfo{V: broker.WorkerInfoVersion, ID: id, Host: "test", Pool: "default", Concurrency: 1,
		StartedMS: jobwire.NowMS(), Resources: broker.WorkerResources{CPU: cpu}}
	_, js := frayt.Connect(c.t, c.url)
	c.t.Cleanup(c.register(js, &info))
}

// register holds info's lease in FRAY_WORKERS (a 1 s TTL renewed every
// 300 ms) until the returned function is called. Like a worker's
// (worker.keepLease), a lease that expired because a renewal came late (a
// test process starved under load) is taken back: the dispatcher, which
// waits ExpiryGrace for that, must not lose the worker over it.
func (c *cluster) register(js jetstream.JetStream, info *broker.WorkerInfo) (stop func()) {
	stop, _ = c.registerPausable(js, info)
	return stop
}

// registerPausable is register, whose renewals pause while paused is set.
func (c *cluster) registerPausable(js jetstream.JetStream, info *broker.WorkerInfo) (stop func(), paused *atomic.Bool) {
	c.t.Helper()
	b, _ := objects.Marshal(info)
	lease, err := broker.AcquireLease(c.ctx, js, broker.BucketWorkers, info.ID, b, time.Second)
	if err != nil {
		c.t.Fatal(err)
	}
	paused = &atomic.Bool{}
	lctx, stopLease := context.WithCancel(context.Background())
	go func() {
		t := time.NewTicker(300 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
			}
			if paused.Load() {
				continue
			}
			if err := lease.Renew(lctx, b); errors.Is(err, broker.ErrLeaseLost) {
				if l, err := retakeLease(lctx, js, info.ID, b); err == nil {
					lease = l
				}
			}
		}
	}()
	return stopLease, paused
}

// retakeLease takes back the lease on key after it was lost: anew when the
// key expired, or where it is when it holds value b (a renewal stored
// without its acknowledgement arriving).
func retakeLease(ctx context.Context, js jetstream.JetStream, key string, b []byte) (*broker.Lease, error) {
	l, err := broker.AcquireLease(ctx, js, broker.BucketWorkers, key, b, time.Second)
	if !errors.Is(err, broker.ErrLeaseHeld) {
		return l, err
	}
	kv, err := broker.KeyValue(ctx, js, broker.BucketWorkers)
	if err != nil {
		return nil, err
	}
	e, err := kv.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(e.Value(), b) {
		return nil, broker.ErrLeaseHeld
	}
	return broker.ResumeLease(ctx, js, broker.BucketWorkers, key, e.Revision(), time.Second)
}

// lossGrace is the dispatchers' ExpiryGrace in tests that lose a worker:
// its lease key expires a second after loseLease, and the default grace
// (5 s) would only lengthen the wait for the loss.
const lossGrace = 500 * time.Millisecond

// loseLease stops renewing the worker's lease, as if it were SIGKILLed: the
// key expires a second later. Its runner keeps going until the dispatcher
// takes its assignments away.
func (w *fakeWorker) loseLease() { w.stopLease() }

func (c *cluster) submit(req jobs.JobRequest) *jobs.Handle {
	c.t.Helper()
	h, err := c.jc.Submit(c.ctx, req)
	if err != nil {
		c.t.Fatalf("submit %s: %v", req.Name, err)
	}
	return h
}

func (c *cluster) wait(h *jobs.Handle) *jobs.Record {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	r, err := h.Wait(ctx)
	if err != nil {
		// Say where the job is stuck.
		if r, ierr := h.Info(c.ctx); ierr == nil {
			c.t.Fatalf("wait %s: %v; it is %s (%s), tasks %+v", h.ID(), err, r.Status, r.PendingReason, r.Tasks)
		}
		c.t.Fatalf("wait %s: %v", h.ID(), err)
	}
	return r
}

func (c *cluster) info(h *jobs.Handle) *jobs.Record {
	c.t.Helper()
	r, err := h.Info(c.ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

func sh(name, script string) jobs.JobRequest {
	return jobs.JobRequest{Name: name, Entrypoint: jobs.Command("sh", "-c", script)}
}
