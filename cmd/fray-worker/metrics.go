package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"

	"github.com/frayhq/fray/internal/daemon"
	"github.com/frayhq/fray/internal/metrics"
	"github.com/frayhq/fray/worker"
	"github.com/prometheus/client_golang/prometheus"
)

// metricsFlag is --metrics-addr.
func metricsFlag(fs *flag.FlagSet) *string {
	return fs.String("metrics-addr", "", "serve this worker's Prometheus metrics at http://HOST:PORT/metrics (off when empty; port 0 picks a free one)")
}

// workerMetrics is the worker's metrics endpoint, when asked for.
type workerMetrics struct {
	l   net.Listener
	reg *prometheus.Registry
}

// listenMetrics opens --metrics-addr before the worker connects, so an
// address in use fails at once (exit 2).
func listenMetrics(addr string) (*workerMetrics, error) {
	if addr == "" {
		return &workerMetrics{}, nil
	}
	l, err := daemon.Listen("--metrics-addr", addr)
	if err != nil {
		return nil, err
	}
	return &workerMetrics{l: l}, nil
}

// observe registers the metrics of the worker that w will point to, and
// sets its observer in o.
func (wm *workerMetrics) observe(o *worker.Options, plugins []worker.Plugin, w **worker.Worker) {
	if wm.l == nil {
		return
	}
	reg := metrics.NewRegistry()
	procs := func() int { return 0 }
	for _, p := range plugins {
		if pc, ok := p.(interface{ Processes() int }); ok {
			procs = pc.Processes
		}
	}
	wo := metrics.WorkerOptions{Pool: o.Pool, Processes: procs,
		Slots: func() int { return (*w).Info().Concurrency }, Busy: func() int { return (*w).Running() },
		Held: func() int { return (*w).Held() }}
	o.Observer = metrics.NewWorker(reg, wo)
	wm.reg = reg
}

// serve serves the metrics until ctx ends; a failure is logged, never
// fatal to the worker.
func (wm *workerMetrics) serve(ctx context.Context, log *slog.Logger) {
	if wm.l == nil || wm.reg == nil {
		return
	}
	fmt.Printf("fray-worker metrics url=http://%s/metrics\n", wm.l.Addr())
	go func() {
		if err := metrics.Serve(ctx, wm.l, metrics.Handler(wm.reg)); err != nil {
			log.Error("metrics endpoint stopped", "err", err)
		}
	}()
}
