package registry_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/cluster"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/registry"
	"github.com/frayhq/fray/tasks"
	"github.com/frayhq/fray/worker"
	"github.com/nats-io/nats.go/jetstream"
)

var testLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// maintain runs a pool directory maintainer on url until the test ends.
func maintain(t *testing.T, url string) {
	t.Helper()
	_, js := frayt.Connect(t, url)
	stop := registry.NewMaintainer(js, registry.MaintainerOptions{Every: 20 * time.Millisecond}).Start()
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("maintainer: %v", err)
		}
	})
}

// fleet is workers wired as fray-worker wires itself: each with its own
// connection, the actor host and the job runner.
type fleet struct {
	workers []*worker.Worker
	wg      sync.WaitGroup
	mu      sync.Mutex
	errs    []error
}

// startFleet starts n workers on url, stopped when the test ends.
func startFleet(t *testing.T, url string, n int, mod func(i int, o *worker.Options)) *fleet {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleet{}
	t.Cleanup(func() {
		cancel()
		f.wg.Wait()
		for _, err := range f.errs {
			t.Errorf("worker: %v", err)
		}
	})
	for i := range n {
		nc, _ := frayt.Connect(t, url)
		plugins, err := cluster.Plugins(cluster.PluginOptions{NATSURL: url, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		o := worker.Options{ID: fmt.Sprintf("w%04d", i), Concurrency: 2, Plugins: plugins, DrainTimeout: time.Nanosecond,
			Logger: testLogger}
		if mod != nil {
			mod(i, &o)
		}
		w, err := worker.New(nc, o)
		if err != nil {
			t.Fatal(err)
		}
		f.workers = append(f.workers, w)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			if err := w.Run(ctx); err != nil {
				f.mu.Lock()
				f.errs = append(f.errs, fmt.Errorf("%s: %w", w.ID(), err))
				f.mu.Unlock()
			}
		}()
	}
	return f
}

// waitPool waits until pool's directory counts n workers and lists fn.
// A fleet of a few hundred starting in one -race process on a loaded
// machine took 80 s to register, and a JetStream request meanwhile
// may outlast its 5 s default: both are waited out, not failed on.
func waitPool(t *testing.T, js jetstream.JetStream, pool string, n int, fn string) broker.PoolDirectory {
	t.Helper()
	var d broker.PoolDirectory
	frayt.Eventually(t, 3*time.Minute, fmt.Sprintf("pool %s lists %d workers serving %s", pool, n, fn), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		kv, err := js.KeyValue(ctx, broker.BucketPools)
		if err != nil {
			return false
		}
		e, err := kv.Get(ctx, pool)
		if err != nil || objects.Unmarshal(e.Value(), &d) != nil {
			return false
		}
		if d.Workers != n {
			return false
		}
		if fn == "" {
			return true
		}
		for _, f := range d.Functions {
			if f == fn {
				return true
			}
		}
		return false
	})
	return d
}

// registryOps counts, from now on, the puts and the expiries of
// FRAY_WORKERS as a liveness decider sees them.
type registryOps struct {
	mu      sync.Mutex
	puts    int
	expired map[string]time.Time // key → its latest expiry not yet followed by a put
	retaken map[string]int       // key → expiries its holder took back within the grace
	lost    map[string]bool      // keys expired and not taken back within the grace
}

func watchRegistry(t *testing.T, js jetstream.JetStream) *registryOps {
	t.Helper()
	kv, err := js.KeyValue(context.Background(), broker.BucketWorkers)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	ops := &registryOps{expired: map[string]time.Time{}, retaken: map[string]int{}, lost: map[string]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			ops.mu.Lock()
			key := e.Key()
			switch e.Operation() {
			case jetstream.KeyValuePut:
				ops.puts++
				if at, ok := ops.expired[key]; ok {
					delete(ops.expired, key)
					if time.Since(at) <= broker.ExpiryGrace {
						ops.retaken[key]++
					} else {
						ops.lost[key] = true
					}
				}
			default:
				ops.expired[key] = time.Now()
			}
			ops.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = w.Stop()
		<-done
	})
	return ops
}

// counts returns the puts seen, the workers a liveness decider would have
// declared lost (expired and not taken back within broker.ExpiryGrace, as
// of now), and how many expiries were taken back in time.
func (o *registryOps) counts() (puts int, lost []string, retaken int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k := range o.lost {
		lost = append(lost, k)
	}
	for k, at := range o.expired {
		if time.Since(at) > broker.ExpiryGrace {
			lost = append(lost, k)
		}
	}
	for _, n := range o.retaken {
		retaken += n
	}
	return o.puts, lost, retaken
}

// extraRegistry is the built-ins plus fn.
func extraRegistry(t *testing.T, fn string) *tasks.Registry {
	t.Helper()
	reg := tasks.NewRegistry()
	if err := worker.RegisterBuiltins(reg); err != nil {
		t.Fatal(err)
	}
	tasks.Register(reg, fn, func(context.Context, int) (int, error) { return 1, nil })
	return reg
}
