package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/internal/observe"
)

// upObserver is `fray up`'s dashboard and metrics endpoint.
type upObserver struct {
	metrics, ui net.Listener
	token       string
	cancel      context.CancelFunc
	done        chan struct{}
}

func closeAll(ls ...net.Listener) {
	for _, l := range ls {
		if l != nil {
			l.Close()
		}
	}
}

// startObserve serves the dashboard and metrics of the cluster at url on
// the listeners (either may be nil) until stop.
func startObserve(url string, metrics, ui net.Listener, of *observe.Flags, log *slog.Logger) (*upObserver, error) {
	o := &upObserver{metrics: metrics, ui: ui, token: of.UIToken, done: make(chan struct{})}
	if metrics == nil && ui == nil {
		close(o.done)
		return o, nil
	}
	x, err := observe.New(observe.Options{URL: url, Metrics: metrics, UI: ui, UIActions: of.UIActions, UIToken: of.UIToken,
		ClientOptions: []fray.Option{fray.WithoutEnvCredentials()}, Logger: log})
	if err != nil {
		closeAll(metrics, ui)
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	go func() {
		defer close(o.done)
		if err := x.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("fray up: dashboard and metrics stopped", "err", err)
		}
	}()
	return o, nil
}

// print says where the dashboard and metrics are, under the
// FRAY_CLUSTER_SPEC line.
func (o *upObserver) print() {
	if o.ui != nil {
		u := observe.URL(o.ui)
		if o.token != "" {
			u += "?token=" + o.token
		}
		fmt.Printf("dashboard: %s\n", u)
	}
	if o.metrics != nil {
		fmt.Printf("metrics: %smetrics\n", observe.URL(o.metrics))
	}
}

func (o *upObserver) stop() {
	if o.cancel != nil {
		o.cancel()
	}
	<-o.done
}
