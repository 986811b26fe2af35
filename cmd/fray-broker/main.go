// Command fray-broker runs a fray broker: nats-server with JetStream
// in-process, the provisioning of every fray stream and bucket, and the
// cluster services (actor supervisor, job dispatcher). With --nats it runs
// no server and serves an existing NATS cluster instead.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/internal/cluster"
	"github.com/frayhq/fray/internal/daemon"
	"github.com/frayhq/fray/internal/observe"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/run"
)

func main() { daemon.Exit("fray-broker", runMain(os.Args[1:])) }

type flags struct {
	store, host, serverName, clusterName, routes, config, sync, natsURL, logLevel string
	port, httpPort, clusterPort, replicas                                         int
	syncEvery, resultTTL, objectTTL, actorRestartWait                             time.Duration
	queueMaxBytes, logMaxBytes                                                    int64
	noSupervisor, noDispatcher                                                    bool
	backends                                                                      multi
	rayAddress, rayNamespace, irisController, irisUser, backendToken              string
	observe                                                                       observe.Flags
}

// multi is a repeatable flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func parseFlags(args []string) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("fray-broker", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: fray-broker [flags]\n\nRuns nats-server with JetStream, provisions fray's streams and buckets, and runs\nthe actor supervisor and job dispatcher. SIGINT/SIGTERM stop it cleanly.\n\nThe broker's own NATS connection authenticates like every fray client, with\nFRAY_NATS_USER/FRAY_NATS_PASSWORD, FRAY_NATS_TOKEN or FRAY_NATS_CREDS, and\nFRAY_NATS_CA/FRAY_NATS_CERT/FRAY_NATS_KEY for TLS: set them when --config or\nthe --nats server requires authentication.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&f.store, "store", "./fray-data", "JetStream store directory (file storage)")
	fs.StringVar(&f.host, "host", "127.0.0.1", "client listen address (0.0.0.0 for every interface)")
	fs.IntVar(&f.port, "port", 4222, "client port (-1 for a random free port)")
	fs.IntVar(&f.httpPort, "http-port", 0, "nats-server monitoring port (0 disables it)")
	fs.StringVar(&f.serverName, "server-name", "", "this node's name; required and unique in a cluster")
	fs.StringVar(&f.clusterName, "cluster-name", "", "cluster name, to join a multi-node cluster")
	fs.IntVar(&f.clusterPort, "cluster-port", 6222, "port for routes from other cluster nodes")
	fs.StringVar(&f.routes, "routes", "", "comma-separated routes to the other nodes (host:port or nats-route://host:port)")
	fs.StringVar(&f.config, "config", "", "a nats-server config file (TLS, auth, accounts); command-line flags override it. With auth, give the broker's own connection credentials through FRAY_NATS_USER/FRAY_NATS_PASSWORD, FRAY_NATS_TOKEN or FRAY_NATS_CREDS")
	fs.IntVar(&f.replicas, "replicas", 1, "replicas of every stream and bucket: 1, or 3 in a 3-node cluster (needs --cluster-name and --routes, or --nats)")
	fs.StringVar(&f.sync, "sync", "interval", "fsync policy: 'interval' (every --sync-every; a machine crash may lose that window) or 'always' (before every ack; ~10x slower)")
	fs.DurationVar(&f.syncEvery, "sync-every", time.Second, "fsync interval under --sync interval (positive)")
	fs.StringVar(&f.natsURL, "nats", "", "run no server: provision and serve this existing NATS cluster (nats://host:port); fails if it cannot connect within 10s")
	fs.DurationVar(&f.resultTTL, "result-ttl", 24*time.Hour, "how long task results stay fetchable by id")
	fs.DurationVar(&f.objectTTL, "object-ttl", 0, "expire objects this long after they are put (0 keeps them)")
	fs.Int64Var(&f.queueMaxBytes, "queue-max-bytes", 1<<30, "bytes of queued tasks before producers get 'queue full' (-1: unlimited)")
	fs.Int64Var(&f.logMaxBytes, "log-max-bytes", 8<<30, "bytes of job logs kept, oldest dropped first; JetStream reserves this much of its storage (-1: unlimited, nothing reserved)")
	fs.DurationVar(&f.actorRestartWait, "actor-restart-wait", 30*time.Second, "how long the actor supervisor waits for an eligible worker to restart a lost actor on before declaring it dead")
	fs.BoolVar(&f.noSupervisor, "no-supervisor", false, "do not run the actor supervisor here")
	fs.BoolVar(&f.noDispatcher, "no-dispatcher", false, "do not run the job dispatcher here")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.Var(&f.backends, "backend", "job backend the dispatcher may use: native, ray, iris, or NAME=SPEC with a ray?/iris? spec (repeatable; the first is the default for jobs that name none via TargetCluster)")
	fs.StringVar(&f.rayAddress, "ray-address", "", "Ray dashboard URL for --backend ray, e.g. http://head:8265")
	fs.StringVar(&f.rayNamespace, "ray-namespace", "", "scope for fray's jobs on a shared Ray cluster (--backend ray)")
	fs.StringVar(&f.irisController, "iris-controller", "", "Iris controller URL for --backend iris, e.g. http://host:10000")
	fs.StringVar(&f.irisUser, "iris-user", "", "user Iris jobs are launched as (--backend iris; default: fray)")
	fs.StringVar(&f.backendToken, "backend-token", "", "bearer token for Ray dashboards or Iris controllers behind an authenticating proxy")
	f.observe.Register(fs, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, daemon.ErrFlags
	}
	if fs.NArg() > 0 {
		return nil, daemon.Usagef("unexpected arguments %q", fs.Args())
	}
	if f.actorRestartWait <= 0 {
		return nil, daemon.Usagef("--actor-restart-wait %s: want a positive duration", f.actorRestartWait)
	}
	if f.sync != broker.SyncInterval && f.sync != broker.SyncAlways {
		return nil, daemon.Usagef("--sync %q: want interval or always", f.sync)
	}
	if f.syncEvery <= 0 {
		return nil, daemon.Usagef("--sync-every %s: want a positive duration", f.syncEvery)
	}
	if f.queueMaxBytes <= 0 && f.queueMaxBytes != -1 {
		return nil, daemon.Usagef("--queue-max-bytes %d: want a positive number of bytes, or -1 for unlimited", f.queueMaxBytes)
	}
	if f.logMaxBytes <= 0 && f.logMaxBytes != -1 {
		return nil, daemon.Usagef("--log-max-bytes %d: want a positive number of bytes, or -1 for unlimited", f.logMaxBytes)
	}
	if f.resultTTL < time.Minute {
		return nil, daemon.Usagef("--result-ttl %s: want at least 1m", f.resultTTL)
	}
	if f.objectTTL < 0 {
		return nil, daemon.Usagef("--object-ttl %s: want a positive duration, or 0 to keep objects", f.objectTTL)
	}
	for _, p := range []struct {
		name string
		port int
	}{{"--port", f.port}, {"--http-port", f.httpPort}, {"--cluster-port", f.clusterPort}} {
		if p.port < -1 || p.port > 65535 {
			return nil, daemon.Usagef("%s %d: want a port number (0 to 65535), or -1 for a random free port", p.name, p.port)
		}
	}
	switch {
	case f.replicas != 1 && f.replicas != 3:
		return nil, daemon.Usagef("--replicas %d: want 1, or 3 in a 3-node cluster", f.replicas)
	case f.replicas == 3 && f.natsURL == "" && f.clusterName == "" && f.routes == "" && f.config == "":
		return nil, daemon.Usagef("--replicas 3 needs a 3-node cluster: run three fray-broker nodes, each with --server-name, --cluster-name and --routes to the other two (or --nats to a clustered NATS)")
	}
	return f, nil
}

func runMain(args []string) error {
	f, err := parseFlags(args)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return daemon.Usagef("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	backends, defaultBackend, err := f.jobBackends()
	if err != nil {
		return daemon.UsageError{Err: err}
	}
	natsOpts, err := fray.NATSOptionsFromEnv()
	if err != nil {
		return err
	}
	obs, err := listenObserve(f)
	if err != nil {
		return err
	}
	defer obs.close()
	url := f.natsURL
	var srv *broker.Server
	if url == "" {
		o := broker.Options{StoreDir: f.store, Host: f.host, Port: f.port, HTTPPort: f.httpPort, ServerName: f.serverName,
			ClusterName: f.clusterName, ClusterPort: f.clusterPort, ConfigFile: f.config, Sync: f.sync, SyncEvery: f.syncEvery, Logger: log.With("part", "nats")}
		if f.routes != "" {
			o.Routes = strings.Split(f.routes, ",")
		}
		if fi, err := os.Stat(f.store); err == nil && !fi.IsDir() {
			return daemon.Usagef("--store %s: not a directory", f.store)
		}
		if err := os.MkdirAll(f.store, 0o755); err != nil {
			return fmt.Errorf("--store: %w", err)
		}
		srv, err = broker.Start(ctx, o)
		if err != nil {
			return startupErr(ctx, log, err)
		}
		defer srv.Shutdown()
		url = srv.ClientURL()
	}
	log.Info("fray-broker connecting", "url", url)
	nc, err := connect(ctx, url, connectWait, natsOpts)
	if err != nil {
		return startupErr(ctx, log, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	po := broker.ProvisionOptions{Replicas: f.replicas, ResultTTL: f.resultTTL, ObjectTTL: f.objectTTL, TaskQueueMaxBytes: f.queueMaxBytes, LogMaxBytes: f.logMaxBytes}
	if err := provision(ctx, nc, js, srv, log, po); err != nil {
		return startupErr(ctx, log, err)
	}
	if backends, err = obs.setup(f, url, natsOpts, backends, log); err != nil {
		return startupErr(ctx, log, err)
	}
	so := cluster.ServiceOptions{ActorRestartWait: f.actorRestartWait, NoSupervisor: f.noSupervisor, NoDispatcher: f.noDispatcher, Logger: log}
	so.Backends, so.DefaultBackend = backends, defaultBackend
	services, err := cluster.Services(nc, js, so)
	if err != nil {
		return startupErr(ctx, log, err)
	}
	var g run.Group
	g.Add(func() error { <-ctx.Done(); return nil }, func(error) { stop() })
	{
		rctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			// Ready once the services answer (a client may ask the
			// dispatcher the moment it reads the line); a service that
			// fails first ends the group, and this wait with it.
			if cluster.WaitReady(rctx, services, nil) == nil {
				// The line tests and scripts wait for: the URL clients use.
				fmt.Printf("fray-broker ready url=%s store=%s\n", url, f.store)
				log.Info("fray-broker ready", "url", url, "sync", f.sync, "replicas", f.replicas)
			}
			<-rctx.Done()
			return nil
		}, func(error) { cancel() })
	}
	{
		octx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			// A failure here is logged, never fatal: the broker's work goes on.
			if err := obs.run(octx); err != nil && octx.Err() == nil {
				log.Error("metrics and dashboard stopped", "err", err)
			}
			<-octx.Done()
			return nil
		}, func(error) { cancel() })
	}
	for _, s := range services {
		sctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			if err := s.Run(sctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			return nil
		}, func(error) { cancel() })
	}
	err = g.Run()
	log.Info("fray-broker stopping")
	return err
}

// startupErr is err, or nil when SIGINT/SIGTERM arrived during startup:
// being stopped before ready is no failure.
func startupErr(ctx context.Context, log *slog.Logger, err error) error {
	if ctx.Err() != nil {
		log.Info("fray-broker stopped before it was ready")
		return nil
	}
	return err
}

// connectWait bounds how long fray-broker retries an unreachable server.
const connectWait = 10 * time.Second

// connect dials url, retrying an unreachable server for up to wait. A
// refused authentication fails at once.
func connect(ctx context.Context, url string, wait time.Duration, extra []nats.Option) (*nats.Conn, error) {
	opts := append([]nats.Option{nats.Name("fray-broker"), nats.MaxReconnects(-1), nats.Timeout(2 * time.Second)}, extra...)
	deadline := time.Now().Add(wait)
	for {
		nc, err := nats.Connect(url, opts...)
		switch {
		case err == nil:
			return nc, nil
		case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired):
			return nil, fmt.Errorf("connect %s: authentication failed: set %s/%s, %s or %s to credentials the server accepts (%v)",
				url, fray.EnvUser, fray.EnvPassword, fray.EnvToken, fray.EnvCreds, err)
		case !retryable(err):
			return nil, fmt.Errorf("connect %s: %w", url, err)
		case time.Now().After(deadline):
			return nil, fmt.Errorf("cannot connect to %s (tried for %s): %w", url, wait, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// retryable reports an error that a server coming up would cure.
func retryable(err error) bool {
	var ne net.Error
	return errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, io.EOF) || errors.As(err, &ne)
}

// provision provisions the layout, waiting as long as it takes for the
// cluster to form (other nodes may start minutes later) and saying what it
// waits for every few seconds. A mistake (bad options, a newer layout,
// replicas on a single server) fails at once.
func provision(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, srv *broker.Server, log *slog.Logger, po broker.ProvisionOptions) error {
	po.OnWait = func(what string) {
		args := []any{"for", what}
		if srv != nil {
			if peers, routes := srv.RoutedPeers(); routes > 0 {
				args = append(args, "routed_nodes", fmt.Sprintf("%d of %d", len(peers), routes), "routed_to", strings.Join(peers, ","))
			}
		}
		log.Warn("fray-broker waiting", args...)
	}
	err := broker.Provision(ctx, js, nc.ConnectedServerVersion(), po)
	if errors.Is(err, broker.ErrReplicasNeedCluster) {
		return fmt.Errorf("--replicas %d needs a clustered NATS (3 nodes): %w", po.Replicas, err)
	}
	if err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	return nil
}

// jobBackends builds the external backends named by --backend; the first
// --backend is the default ("" means native).
func (f *flags) jobBackends() ([]dispatcher.Backend, string, error) {
	var out []dispatcher.Backend
	def := ""
	for i, b := range f.backends {
		var kind string
		params := map[string]string{}
		if name, spec, ok := strings.Cut(b, "="); ok {
			sp, err := fray.ParseSpec(spec)
			if err != nil || (sp.Kind != fray.SpecRay && sp.Kind != fray.SpecIris) {
				return nil, "", fmt.Errorf("--backend %q: want NAME=ray?address=URL or NAME=iris?controller=URL", b)
			}
			kind, params = sp.Kind, sp.Params
			params["name"] = name
		} else {
			kind = b
			switch b {
			case "native":
				continue
			case fray.SpecRay:
				params["address"], params["namespace"] = f.rayAddress, f.rayNamespace
				if f.rayAddress == "" {
					return nil, "", fmt.Errorf("--backend ray needs --ray-address http://head:8265")
				}
			case fray.SpecIris:
				params["controller"], params["user"] = f.irisController, f.irisUser
				if f.irisController == "" {
					return nil, "", fmt.Errorf("--backend iris needs --iris-controller http://host:port")
				}
			default:
				return nil, "", fmt.Errorf("--backend %q: want native, ray, iris or NAME=SPEC", b)
			}
		}
		if f.backendToken != "" && params["token"] == "" {
			params["token"] = f.backendToken
		}
		be, err := cluster.Backend(kind, params)
		if err != nil {
			return nil, "", fmt.Errorf("--backend %q: %w", b, err)
		}
		if i == 0 {
			def = be.Name()
		}
		out = append(out, be)
	}
	return out, def, nil
}
