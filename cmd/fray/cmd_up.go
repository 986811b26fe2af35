package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/cluster"
	"github.com/frayhq/fray/internal/observe"
	"github.com/frayhq/fray/worker"
)

func init() {
	register(command{name: "up", summary: "run a whole local cluster (broker, services and workers) in this process", run: runUp})
}

func runUp(ctx context.Context, args []string) error {
	fs := newFlags("up", "[flags]")
	workers := fs.Int("workers", 2, "number of in-process workers")
	concurrency := fs.Int("concurrency", 0, "task slots per worker (default: number of CPUs)")
	store := fs.String("store", "", "JetStream store directory (default: a temporary directory removed on exit)")
	port := fs.Int("port", 4222, "client port (-1 for a random free port)")
	host := fs.String("host", "127.0.0.1", "client listen address")
	verbose := fs.Bool("v", false, "log what the broker and workers do")
	var of observe.Flags
	of.Register(fs, "127.0.0.1:0")
	if _, err := parsePositional(fs, args, 0, 0, ""); err != nil {
		return err
	}
	if *workers < 0 {
		return usagef(fs, "--workers %d: want 0 or more", *workers)
	}
	if *concurrency < 0 {
		return usagef(fs, "--concurrency %d: want at least 1, or 0 for the number of CPUs", *concurrency)
	}
	if *port < -1 || *port > 65535 {
		return usagef(fs, "--port %d: want a port number (0 to 65535), or -1 for a random free port", *port)
	}
	metricsL, uiL, err := listenFlags(fs, &of, nil)
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	// Handlers get a client of this cluster, as fray-worker's do, so an
	// actor handle in a task argument can be called. The client exists
	// once the broker does; a task queued in --store before this start
	// that reaches a worker in the moment before gets none (calling a
	// handle then says it is not bound to a client).
	var client atomic.Pointer[fray.Client]
	handlerCtx := func(ctx context.Context) context.Context {
		if c := client.Load(); c != nil {
			return fray.WithClient(ctx, c)
		}
		return ctx
	}
	// Every SIGINT/SIGTERM reaches this channel too, from now on: the
	// first is the one that ends ctx, and a second stops at once (below).
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	l, err := cluster.StartLocal(ctx, cluster.LocalOptions{
		Broker:    broker.Options{StoreDir: *store, Host: *host, Port: *port},
		Workers:   *workers,
		NoWorkers: *workers == 0,
		Worker:    worker.Options{Concurrency: *concurrency, Prefetch: worker.DefaultPrefetch(*concurrency), HandlerContext: handlerCtx},
		Logger:    log,
	})
	if err != nil {
		closeAll(metricsL, uiL)
		if ctx.Err() != nil {
			return nil // stopped (Ctrl-C) before it was ready: no failure
		}
		return err
	}
	c, err := fray.Connect(ctx, l.URL(), fray.WithoutEnvCredentials()) // its own broker: no credentials
	if err != nil {
		closeAll(metricsL, uiL)
		l.Stop()
		return err
	}
	obs, err := startObserve(l.URL(), metricsL, uiL, &of, log)
	if err != nil {
		c.Close()
		l.Stop()
		return err
	}
	defer obs.stop()
	client.Store(c)
	noun := "workers"
	if *workers == 1 {
		noun = "worker"
	}
	fmt.Printf("fray up: %d %s ready\nexport FRAY_CLUSTER_SPEC=%s\n", *workers, noun, l.URL())
	obs.print()
	// A second Ctrl-C (or SIGTERM) stops at once instead of waiting for
	// running tasks (up to 30 s): the broker goes down under them, and
	// with --store they run again after their lease once fray up is back.
	select {
	case <-signals: // the first (it ends ctx too)
	case <-ctx.Done():
		// Ended by our caller, or by a signal on its way to signals as
		// well: take that one, so the next is the second.
		select {
		case <-signals:
		case <-time.After(100 * time.Millisecond):
		}
	}
	again := signals
	fmt.Fprintln(os.Stderr, "fray up: stopping (workers drain first; Ctrl-C again to stop at once)")
	obs.stop() // before the broker goes, so it does not log the broker's absence
	stopped := make(chan error, 1)
	go func() {
		// The client closes while the broker is still up, so it says
		// goodbye instead of waiting on, or writing to, a dead connection.
		_ = l.Drain() // Stop returns its errors
		c.Close()
		stopped <- l.Stop()
	}()
	select {
	case err = <-stopped:
		return err
	case <-again:
		fmt.Fprintln(os.Stderr, "fray up: stopping at once, without waiting for running tasks")
		c.Close()
		l.Server.Shutdown()
		return exitError{code: 130}
	}
}
