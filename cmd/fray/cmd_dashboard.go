package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/internal/daemon"
	"github.com/frayhq/fray/internal/observe"
)

func init() {
	register(command{name: "dashboard", summary: "serve the web dashboard of a running cluster: jobs with live logs, workers, actors, queues", run: runDashboard})
}

func runDashboard(ctx context.Context, args []string) error {
	fs := newFlags("dashboard", "[flags]")
	natsURL := taskClusterFlag(fs)
	var of observe.Flags
	fs.StringVar(&of.UIAddr, "addr", "127.0.0.1:8470", "serve the dashboard at HOST:PORT (port 0 picks a free one)")
	fs.StringVar(&of.UIToken, "token", "", "require this token to open the dashboard (open it once as URL?token=TOKEN); advised when --addr is not loopback")
	fs.BoolVar(&of.UIActions, "actions", false, "let the dashboard stop jobs and shut actors down (read-only without it)")
	fs.StringVar(&of.MetricsAddr, "metrics-addr", "", "also serve the cluster's Prometheus metrics at HOST:PORT/metrics")
	if _, err := parsePositional(fs, args, 0, 0, ""); err != nil {
		return err
	}
	if *natsURL == "" {
		return errNoCluster
	}
	sp, err := fray.ParseSpec(*natsURL)
	if err != nil || len(sp.URLs) == 0 {
		return usagef(fs, "--nats %q: want nats://host:4222 of a running fray cluster", *natsURL)
	}
	if strings.TrimSpace(of.UIAddr) == "" {
		return usagef(fs, "--addr: want HOST:PORT")
	}
	metrics, ui, err := listenFlags(fs, &of, map[string]string{"--ui-addr": "--addr", "--ui-token": "--token", "--ui-actions": "--actions"})
	if err != nil {
		return err
	}
	x, err := observe.New(observe.Options{URL: strings.Join(sp.URLs, ","), Metrics: metrics, UI: ui, UIActions: of.UIActions, UIToken: of.UIToken})
	if err != nil {
		return err
	}
	u := observe.URL(ui)
	if of.UIToken != "" {
		u += "?token=" + of.UIToken
	}
	fmt.Printf("fray dashboard: %s (Ctrl-C stops it)\n", u)
	if metrics != nil {
		fmt.Printf("fray dashboard: metrics at %smetrics\n", observe.URL(metrics))
	}
	if err := x.Run(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// listenFlags opens the listeners of of; an address in use or malformed is
// a usage error (exit 2) naming the flag as this command spells it (rename
// maps observe's flag names to the command's).
func listenFlags(fs *flag.FlagSet, of *observe.Flags, rename map[string]string) (metrics, ui net.Listener, err error) {
	metrics, ui, err = of.Listen(os.Stderr)
	var ue daemon.UsageError
	if errors.As(err, &ue) {
		msg := ue.Error()
		for from, to := range rename {
			msg = strings.ReplaceAll(msg, from, to)
		}
		return nil, nil, usagef(fs, "%s", msg)
	}
	return metrics, ui, err
}
