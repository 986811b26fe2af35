package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/internal/observe"
	"github.com/nats-io/nats.go"
)

// observer is the broker's metrics endpoint and dashboard, when asked for.
type observer struct {
	metrics, ui net.Listener
	x           *observe.Observer
}

// listenObserve opens the --metrics-addr and --ui-addr listeners before
// anything starts, so an address in use fails at once (exit 2).
func listenObserve(f *flags) (*observer, error) {
	m, ui, err := f.observe.Listen(os.Stderr)
	if err != nil {
		return nil, err
	}
	return &observer{metrics: m, ui: ui}, nil
}

// close releases listeners never handed to Run.
func (o *observer) close() {
	if o.x == nil {
		for _, l := range []net.Listener{o.metrics, o.ui} {
			if l != nil {
				l.Close()
			}
		}
	}
}

// setup makes the observer for the cluster at url and wraps the backends
// so their errors are counted; it prints where the endpoints are.
func (o *observer) setup(f *flags, url string, natsOpts []nats.Option, backends []dispatcher.Backend, log *slog.Logger) ([]dispatcher.Backend, error) {
	if o.metrics == nil && o.ui == nil {
		return backends, nil
	}
	x, err := observe.New(observe.Options{URL: url, Metrics: o.metrics, UI: o.ui, UIActions: f.observe.UIActions, UIToken: f.observe.UIToken,
		ClientOptions: []fray.Option{fray.WithoutEnvCredentials(), fray.WithNATSOptions(append(natsOpts, nats.Name("fray-broker-observe"))...)},
		Logger:        log.With("part", "observe")})
	if err != nil {
		return nil, err
	}
	o.x = x
	if o.metrics != nil {
		fmt.Printf("fray-broker metrics url=%smetrics\n", observe.URL(o.metrics))
	}
	if o.ui != nil {
		u := observe.URL(o.ui)
		if f.observe.UIToken != "" {
			u += "?token=" + f.observe.UIToken
		}
		fmt.Printf("fray-broker dashboard url=%s\n", u)
	}
	return x.WrapBackends(backends), nil
}

// run serves until ctx ends.
func (o *observer) run(ctx context.Context) error {
	if o.x == nil {
		<-ctx.Done()
		return nil
	}
	return o.x.Run(ctx)
}
