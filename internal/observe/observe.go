package observe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/internal/clusterview"
	"github.com/frayhq/fray/internal/dashboard"
	"github.com/frayhq/fray/internal/metrics"
)

// Options configures what to serve. A nil listener switches that part off.
type Options struct {
	// URL is the cluster's NATS URL (nats://host:port).
	URL string
	// ClientOptions are how to connect to it (credentials, TLS).
	ClientOptions []fray.Option
	// Metrics serves the Prometheus endpoint; UI the dashboard.
	Metrics, UI net.Listener
	// UIActions adds the dashboard's stop-job and shut-down-actor buttons.
	UIActions bool
	// UIToken, if set, is required by the dashboard.
	UIToken string
	// Refresh is the view's polling interval (see clusterview.Options).
	Refresh time.Duration
	Logger  *slog.Logger
}

// Observer serves metrics and the dashboard.
type Observer struct {
	o       Options
	metrics *metrics.Broker
	ready   chan struct{}
}

// New validates o. Nothing runs until Run.
func New(o Options) (*Observer, error) {
	if o.URL == "" {
		return nil, errors.New("observe: no cluster URL")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	x := &Observer{o: o, ready: make(chan struct{})}
	if o.Metrics != nil {
		x.metrics = metrics.NewBroker()
	}
	return x, nil
}

// WrapBackends counts the external backends' errors in the metrics (when
// served). Call it before the dispatcher is built with them.
func (x *Observer) WrapBackends(bs []dispatcher.Backend) []dispatcher.Backend {
	if x.metrics == nil {
		return bs
	}
	out := make([]dispatcher.Backend, len(bs))
	for i, b := range bs {
		out[i] = x.metrics.WrapBackend(b)
	}
	return out
}

// Ready is closed once Run has loaded the view and its subscriptions are
// in place on the server: from then on every task submitted and every
// result stored is counted, and the dashboard shows every job and actor
// recorded before. It stays open if Run ends first.
func (x *Observer) Ready() <-chan struct{} { return x.ready }

// URL is the address a person opens for a listener ("http://host:port/").
func URL(l net.Listener) string {
	a := l.Addr().(*net.TCPAddr)
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(a.Port)) + "/"
}

// Run connects, keeps the view and serves until ctx ends. It closes the
// listeners it was given.
func (x *Observer) Run(ctx context.Context) error {
	defer func() {
		for _, l := range []net.Listener{x.o.Metrics, x.o.UI} {
			if l != nil {
				l.Close()
			}
		}
	}()
	c, err := fray.Connect(ctx, x.o.URL, x.o.ClientOptions...)
	if err != nil {
		return fmt.Errorf("observe: connect %s: %w", x.o.URL, err)
	}
	defer c.Close()
	vo := clusterview.Options{Refresh: x.o.Refresh, Logger: x.o.Logger}
	if x.metrics != nil {
		vo = x.metrics.Hooks(vo)
	}
	view := clusterview.New(vo)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 3)
	running := 0
	start := func(f func() error) {
		running++
		go func() { errs <- f() }()
	}
	start(func() error { return view.Run(ctx, c.NATS(), c.JetStream()) })
	if x.metrics != nil {
		err := x.metrics.Subscribe(c.NATS())
		if err == nil {
			// The server has the subscription once it answered a flush
			// sent after it: Ready promises counting from then on.
			fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
			err = c.NATS().FlushWithContext(fctx)
			fcancel()
		}
		if err != nil {
			cancel()
			<-errs
			return err
		}
		defer x.metrics.Close()
		reg := metrics.NewRegistry()
		x.metrics.Register(reg, view)
		start(func() error { return metrics.Serve(ctx, x.o.Metrics, metrics.Handler(reg)) })
	}
	if x.o.UI != nil {
		do := dashboard.Options{ClusterURL: x.o.URL, Token: x.o.UIToken, Logger: x.o.Logger}
		if x.o.UIActions {
			do.Actions = clientActions{c}
		}
		srv, err := dashboard.New(view, c.JetStream(), do)
		if err != nil {
			cancel()
			for range running {
				<-errs
			}
			return err
		}
		start(func() error { return metrics.Serve(ctx, x.o.UI, srv) })
	}
	// The view subscribes to results before it loads, on the same
	// connection as the metrics' subscription: both are in place on the
	// server once it is ready.
	ready := view.Ready()
	var first error
	for ended := 0; ended < running; {
		select {
		case <-ready:
			close(x.ready)
			ready = nil
		case err := <-errs:
			if ended == 0 {
				cancel() // one part ended: stop the others
			}
			ended++
			if first == nil && err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, http.ErrServerClosed) {
				first = err
			}
		}
	}
	return first
}

// clientActions are the dashboard's writes, through a fray client.
type clientActions struct{ c *fray.Client }

func (a clientActions) StopJob(ctx context.Context, id string) error {
	jc, err := a.c.Jobs(ctx)
	if err != nil {
		return err
	}
	return jc.Stop(ctx, id, "stopped from the dashboard")
}

func (a clientActions) ShutdownActor(ctx context.Context, ns, name string) error {
	h, err := a.c.GetActor(ctx, name, actors.Namespace(ns))
	if err != nil {
		return err
	}
	return h.Shutdown(ctx)
}
