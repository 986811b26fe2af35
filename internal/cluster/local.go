package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/tasks"
	"github.com/frayhq/fray/worker"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// LocalOptions configures a whole cluster in one process.
type LocalOptions struct {
	// Broker configures the embedded nats-server. Its StoreDir defaults
	// to a temporary directory removed on Stop.
	Broker broker.Options
	// Provision sizes the layout.
	Provision broker.ProvisionOptions
	// Workers is the number of in-process workers. Defaults to 1; 0 with
	// NoWorkers set means none.
	Workers   int
	NoWorkers bool
	// Worker is the template for each worker (pool, concurrency,
	// registry, ...). IDs are "local-<n>" unless set.
	Worker worker.Options
	// Services configures the supervisor and dispatcher.
	Services ServiceOptions
	Logger   *slog.Logger
}

// Local is a running in-process cluster.
type Local struct {
	Server *broker.Server
	nc     *nats.Conn
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
	// failed is closed when a part's Run first returns an error.
	failed chan struct{}
	once   sync.Once
	// drainOnce guards Drain, which Stop calls too.
	drainOnce sync.Once
}

// URL is the embedded broker's client URL.
func (l *Local) URL() string { return l.Server.ClientURL() }

// StartLocal starts a broker, provisions it, and runs the services and
// workers in this process until Stop.
func StartLocal(ctx context.Context, o LocalOptions) (*Local, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Broker.Port == 0 {
		o.Broker.Port = -1
	}
	srv, err := broker.Start(ctx, o.Broker)
	if err != nil {
		return nil, err
	}
	l := &Local{Server: srv, failed: make(chan struct{})}
	fail := func(err error) (*Local, error) {
		l.Stop()
		return nil, err
	}
	l.nc, err = nats.Connect(srv.ClientURL(), nats.Name("fray-local"), nats.MaxReconnects(-1))
	if err != nil {
		return fail(fmt.Errorf("cluster: connect to local broker: %w", err))
	}
	js, err := jetstream.New(l.nc)
	if err != nil {
		return fail(err)
	}
	if err := broker.Provision(ctx, js, l.nc.ConnectedServerVersion(), o.Provision); err != nil {
		return fail(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	o.Services.Logger = o.Logger
	if o.Services.JobStartupGrace == 0 {
		// The workers are in this process and register within moments: a
		// job none of them can run fails after a second, not ten.
		o.Services.JobStartupGrace = time.Second
	}
	services, err := Services(l.nc, js, o.Services)
	if err != nil {
		return fail(err)
	}
	for _, s := range services {
		l.goRun(s.Name, func() error { return s.Run(rctx) })
	}
	// A client of this process may ask the dispatcher at once.
	if err := WaitReady(ctx, services, l.failed); err != nil {
		return fail(errors.Join(err, l.err()))
	}
	n := o.Workers
	if n == 0 && !o.NoWorkers {
		n = 1
	}
	for i := range n {
		wo := o.Worker
		if wo.ID == "" || n > 1 {
			wo.ID = fmt.Sprintf("local-%d", i)
		}
		if wo.Logger == nil {
			wo.Logger = o.Logger
		}
		// Workers sharing one host share its capacity: jobs must not be
		// placed as if each had the whole machine.
		share := jobs.RunnerOptions{CPU: float64(runtime.NumCPU()) / float64(n)}
		if mem := jobs.HostMemory(); mem > 0 {
			share.RAM = strconv.FormatInt(mem/int64(n), 10)
		}
		plugins, err := Plugins(PluginOptions{NATSURL: srv.ClientURL(), Logger: o.Logger, JobRunner: share})
		if err != nil {
			return fail(err)
		}
		wo.Plugins = append(append([]worker.Plugin(nil), wo.Plugins...), plugins...)
		if wo.Registry == nil {
			wo.Registry = tasks.NewRegistry()
			if err := worker.RegisterBuiltins(wo.Registry); err != nil {
				return fail(err)
			}
		}
		w, err := worker.New(l.nc, wo)
		if err != nil {
			return fail(err)
		}
		l.goRun("worker "+wo.ID, func() error { return w.Run(rctx) })
	}
	// Wait until the pool directory counts every worker, so a first
	// submission finds its function (or is refused as unknown).
	pool := o.Worker.Pool
	if pool == "" {
		pool = tasks.DefaultPool
	}
	pools := map[string]int{}
	if n > 0 {
		pools[pool] = n
	}
	kv, err := js.KeyValue(ctx, broker.BucketPools)
	if err != nil {
		return fail(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		missing := ""
		for pool, want := range pools {
			var d broker.PoolDirectory
			e, err := kv.Get(ctx, pool)
			if err == nil {
				err = objects.Unmarshal(e.Value(), &d)
			}
			if err != nil || d.Workers < want {
				missing = fmt.Sprintf("pool %s lists %d of %d local workers", pool, d.Workers, want)
			}
		}
		if missing == "" || o.Services.NoDirectory {
			break
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("cluster: %s after 10s: %v", missing, l.err()))
		}
		time.Sleep(5 * time.Millisecond) // poll the directory
	}
	return l, nil
}

func (l *Local) goRun(name string, f func() error) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if err := f(); err != nil && !errors.Is(err, context.Canceled) {
			l.mu.Lock()
			if len(l.errs) == 0 {
				close(l.failed)
			}
			l.errs = append(l.errs, fmt.Errorf("%s: %w", name, err))
			l.mu.Unlock()
		}
	}()
}

func (l *Local) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(l.errs...)
}

// Drain drains the workers and stops the services, leaving the broker up
// for clients of this process to close against before Stop. It returns
// the errors the parts ended with.
func (l *Local) Drain() error {
	l.drainOnce.Do(func() {
		if l.cancel != nil {
			l.cancel()
		}
		l.wg.Wait()
	})
	return l.err()
}

// Stop drains the workers, stops the services and shuts the broker down.
// It returns the errors the parts ended with.
func (l *Local) Stop() error {
	l.once.Do(func() {
		_ = l.Drain()
		if l.nc != nil {
			l.nc.Close()
		}
		l.Server.Shutdown()
	})
	return l.err()
}
