package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/bench"
	"github.com/frayhq/fray/worker"
	"github.com/frayhq/fray/worker/langrt"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// actorsBench is `fray bench actors`' result; --json prints it as one line.
type actorsBench struct {
	Calls        int     `json:"calls"`
	Concurrency  int     `json:"concurrency"`
	Rounds       int     `json:"rounds"`
	CallsPerS    float64 `json:"calls_per_s"`
	P50MS        float64 `json:"p50_ms"`
	P99MS        float64 `json:"p99_ms"`
	BaselinePerS float64 `json:"baseline_calls_per_s,omitempty"`
	BaselineP50  float64 `json:"baseline_p50_ms,omitempty"`
	Ratio        float64 `json:"ratio,omitempty"`
}

func (r actorsBench) String() string {
	s := fmt.Sprintf("actors: %d calls, %d in flight: %.0f calls/s (median of %d); one at a time: p50 %.3f ms, p99 %.3f ms",
		r.Calls, r.Concurrency, r.CallsPerS, r.Rounds, r.P50MS, r.P99MS)
	if r.BaselinePerS > 0 {
		s += fmt.Sprintf("\nbaseline (bare NATS request/reply): %.0f req/s, p50 %.3f ms\nratio fray/baseline: %.2f",
			r.BaselinePerS, r.BaselineP50, r.Ratio)
	}
	return s
}

func benchActors(ctx context.Context, args []string) error {
	fs := newBenchFlags("actors")
	calls := fs.Int("calls", 20000, "number of async calls in the throughput phase")
	conc := fs.Int("concurrency", 64, "calls in flight from the one client")
	rounds := fs.Int("rounds", 3, "throughput rounds (fray and baseline alternate); rates are the median")
	seq := fs.Int("sequential", 0, "calls in the one-at-a-time latency phase (default min(calls, 2000))")
	base := fs.Bool("baseline", false, "also measure bare NATS request/reply, set up the same way, and print fray/baseline")
	asJSON := fs.Bool("json", false, "print one JSON line: calls, concurrency, rounds, calls_per_s, p50_ms, p99_ms (with --baseline also baseline_calls_per_s, baseline_p50_ms, ratio)")
	store := fs.String("store", "", "store directory (default: a temporary directory)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	rt := addBenchRuntime(fs, "actor")
	if _, err := parsePositional(fs, args, 0, 0, ""); err != nil {
		return err
	}
	pyOpts, err := rt.options(fs)
	if err != nil {
		return err
	}
	if *calls < 1 || *conc < 1 || *rounds < 1 {
		return fmt.Errorf("--calls, --concurrency and --rounds must be >= 1")
	}
	if *seq == 0 {
		*seq = min(*calls, 2000)
	}
	dir := *store
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "fray-bench-actors-*"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	srv, err := broker.Start(ctx, broker.Options{StoreDir: dir, Port: -1})
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	hostNC, hostJS, err := actorsBenchConnect(srv.ClientURL(), "fray-bench-actor-host")
	if err != nil {
		return err
	}
	defer hostNC.Close()
	callerNC, callerJS, err := actorsBenchConnect(srv.ClientURL(), "fray-bench-actor-caller")
	if err != nil {
		return err
	}
	defer callerNC.Close()
	if err := broker.Provision(ctx, hostJS, hostNC.ConnectedServerVersion(), broker.ProvisionOptions{}); err != nil {
		return err
	}

	// One actor, MaxConcurrency 1, served by its own connection; one caller.
	caller, err := actors.NewClient(ctx, callerNC, callerJS, actors.ClientOptions{})
	if err != nil {
		return err
	}
	defer caller.Close()
	method := "Noop"
	if pyOpts == nil {
		host, err := actors.NewClient(ctx, hostNC, hostJS, actors.ClientOptions{})
		if err != nil {
			return err
		}
		defer host.Close()
		hosted, err := host.HostActor(ctx, actors.ClassEcho, "bench", &actors.Echo{}, actors.MaxConcurrency(1))
		if err != nil {
			return err
		}
		defer hosted.Shutdown(context.Background())
	} else {
		stop, err := benchPythonHost(ctx, hostNC, *pyOpts)
		if err != nil {
			return err
		}
		defer stop()
		if _, err := caller.CreateActor(ctx, bench.PythonEcho, "bench", nil, actors.MaxConcurrency(1)); err != nil {
			return err
		}
		method = "noop"
	}
	h, err := caller.GetActor(ctx, "bench")
	if err != nil {
		return err
	}
	call := func() error { return h.Call(ctx, method, nil).Get(ctx, nil) }

	const subject = "fray.bench.baseline"
	if *base {
		sub, err := hostNC.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond(nil) })
		if err != nil {
			return err
		}
		_ = sub.SetPendingLimits(-1, -1)
		defer sub.Unsubscribe()
		if err := hostNC.Flush(); err != nil {
			return err
		}
	}
	bare := func() error { _, err := callerNC.Request(subject, nil, 10*time.Second); return err }

	stopProfile, err := startCPUProfile(*cpuprofile)
	if err != nil {
		return err
	}
	defer stopProfile()
	res := actorsBench{Calls: *calls, Concurrency: *conc, Rounds: *rounds}
	if _, err := actorsThroughput(min(*calls, 2000), *conc, call); err != nil { // warm up
		return err
	}
	if *base {
		if _, err := actorsThroughput(min(*calls, 2000), *conc, bare); err != nil {
			return err
		}
	}
	// Rounds alternate fray and baseline so both see the same machine
	// (other processes' load comes and goes); each rate is the median.
	var rates, baseRates []float64
	for range *rounds {
		r, err := actorsThroughput(*calls, *conc, call)
		if err != nil {
			return err
		}
		rates = append(rates, r)
		if *base {
			r, err := actorsThroughput(*calls, *conc, bare)
			if err != nil {
				return err
			}
			baseRates = append(baseRates, r)
		}
	}
	res.CallsPerS = bench.Median(rates)
	lat, err := actorsSequential(*seq, call)
	if err != nil {
		return err
	}
	res.P50MS, res.P99MS = actorsPercentile(lat, 50), actorsPercentile(lat, 99)
	if *base {
		res.BaselinePerS = bench.Median(baseRates)
		blat, err := actorsSequential(*seq, bare)
		if err != nil {
			return err
		}
		res.BaselineP50 = actorsPercentile(blat, 50)
		res.Ratio = res.CallsPerS / res.BaselinePerS
	}
	if *asJSON {
		return printJSON(res)
	}
	fmt.Println(res)
	return nil
}

func actorsBenchConnect(url, name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, nats.Name(name))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// actorsThroughput makes n calls from conc goroutines (conc in flight) and
// returns calls per second.
func actorsThroughput(n, conc int, call func() error) (float64, error) {
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && firstErr.Load() == nil {
				if err := call(); err != nil {
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return 0, *p
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// actorsSequential makes n calls one at a time and returns their latencies.
func actorsSequential(n int, call func() error) ([]time.Duration, error) {
	lat := make([]time.Duration, n)
	for i := range lat {
		t := time.Now()
		if err := call(); err != nil {
			return nil, err
		}
		lat[i] = time.Since(t)
	}
	return lat, nil
}

// actorsPercentile returns the p-th percentile of lat in milliseconds.
func actorsPercentile(lat []time.Duration, p float64) float64 {
	s := append([]time.Duration(nil), lat...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p / 100)
	return float64(s[i].Microseconds()) / 1000
}

// benchPythonHost runs a worker on nc whose actor host serves the Python
// bench class in a Python runtime, until stop.
func benchPythonHost(ctx context.Context, nc *nats.Conn, po langrt.Options) (stop func(), err error) {
	po.Procs = 1
	po.Imports = append(po.Imports, bench.PythonBenchModule)
	po.Logger = slog.New(slog.DiscardHandler)
	rt, err := langrt.Start(ctx, po)
	if err != nil {
		return nil, err
	}
	areg := actors.NewRegistry()
	if err := rt.RegisterActors(areg); err != nil {
		rt.Close()
		return nil, err
	}
	w, err := worker.New(nc, worker.Options{ID: "bench-python", Concurrency: 1, Logger: slog.New(slog.DiscardHandler),
		Plugins: []worker.Plugin{actors.NewHost(areg, actors.HostOptions{})}})
	if err != nil {
		rt.Close()
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	stop = func() {
		cancel()
		<-done
		rt.Close()
	}
	// Placement needs the worker in the registry.
	js, err := jetstream.New(nc)
	if err != nil {
		stop()
		return nil, err
	}
	for {
		if kv, err := js.KeyValue(ctx, broker.BucketWorkers); err == nil {
			if _, err := kv.Get(ctx, "bench-python"); err == nil {
				return stop, nil
			}
		}
		select {
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond): // registry poll
		}
	}
}
