package fray

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/cluster"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/registry"
	"github.com/frayhq/fray/tasks"
	"github.com/frayhq/fray/worker"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Environment variables the client reads.
const (
	EnvClusterSpec = "FRAY_CLUSTER_SPEC" // where to connect; see ParseSpec
	EnvNamespace   = "FRAY_NAMESPACE"    // default namespace for jobs and actors
	EnvJobID       = "FRAY_JOB_ID"       // set inside a job: the job's id
	EnvCreds       = "FRAY_NATS_CREDS"   // NATS credentials file
	EnvUser        = "FRAY_NATS_USER"    // NATS user (with FRAY_NATS_PASSWORD)
	EnvPassword    = "FRAY_NATS_PASSWORD"
	EnvToken       = "FRAY_NATS_TOKEN" // NATS token
	EnvTLSCA       = "FRAY_NATS_CA"    // CA bundle to verify the servers
	EnvTLSCert     = "FRAY_NATS_CERT"  // client certificate (with FRAY_NATS_KEY)
	EnvTLSKey      = "FRAY_NATS_KEY"
	// EnvInbox is the prefix of this client's reply subjects (inboxes),
	// e.g. _INBOX.fray-producer: with fray auth's roles a user may only
	// subscribe to its own inboxes.
	EnvInbox = "FRAY_NATS_INBOX"
	// EnvOwner is the owner token of this client's task results
	// (fray.results.<owner>.<task>). Defaults to a random token per
	// process; with fray auth's roles it is the user's name, the only
	// owner whose results the user may read.
	EnvOwner = "FRAY_OWNER"
)

// localDrainTimeout is how long the in-process workers of a local client
// let running tasks finish when the client closes (fray up keeps the
// workers' 30 s default).
const localDrainTimeout = time.Second

// ErrPermissionDenied is matched (errors.Is) by every error returned
// because the server refused a publish or a subscription to this user: the
// call fails at once with a *broker.PermissionError naming the subject and
// the user, instead of waiting out a timeout.
var ErrPermissionDenied = broker.ErrPermissionDenied

// DefaultNamespace is the namespace of jobs and actors unless set.
const DefaultNamespace = "default"

// Client is the one handle users need: tasks, objects, jobs and actors.
// It is safe for concurrent use.
type Client struct {
	nc        *nats.Conn
	js        jetstream.JetStream
	spec      Spec
	namespace string
	store     *objects.Store
	producer  *tasks.Producer
	local     *cluster.Local
	localReg  *tasks.Registry // the in-process workers' handlers (local mode)
	log       *slog.Logger

	// ext holds lazily built sub-clients of the capability packages.
	ext struct {
		actors lazy[*actors.Client]
		jobs   lazy[*jobs.Client]
	}
	closers   []func() error
	closeOnce sync.Once
}

type config struct {
	registry     *tasks.Registry
	workers      int
	concurrency  int
	namespace    string
	natsOpts     []nats.Option
	logger       *slog.Logger
	maxValueSize int64
	storeDir     string
	noEnv        bool
	owner        string
}

// Option configures Connect.
type Option func(*config) error

// WithoutEnvCredentials makes Connect ignore the FRAY_NATS_* variables:
// for a process connecting to a broker it runs itself (fray up), which
// wants none of the credentials or TLS files meant for other clusters.
func WithoutEnvCredentials() Option {
	return func(c *config) error { c.noEnv = true; return nil }
}

// WithRegistry gives the in-process worker of a local cluster these
// handlers (the built-ins are added). Ignored for remote clusters.
func WithRegistry(reg *tasks.Registry) Option {
	return func(c *config) error {
		if reg == nil {
			return errors.New("fray: WithRegistry(nil)")
		}
		c.registry = reg
		return nil
	}
}

// WithLocalWorkers sets how many in-process workers a local cluster runs,
// each with concurrency slots (0 = GOMAXPROCS). Defaults to 1 worker.
func WithLocalWorkers(n, concurrency int) Option {
	return func(c *config) error {
		if n < 0 || concurrency < 0 {
			return fmt.Errorf("fray: WithLocalWorkers(%d, %d): want non-negative", n, concurrency)
		}
		c.workers, c.concurrency = n, concurrency
		return nil
	}
}

// WithLocalStore keeps a local cluster's store in dir instead of a
// temporary directory, so it survives restarts.
func WithLocalStore(dir string) Option {
	return func(c *config) error { c.storeDir = dir; return nil }
}

// WithNamespace sets the namespace of jobs and actors. Defaults to
// FRAY_NAMESPACE, else the namespace of the job this process runs in
// (FRAY_JOB_ID), else "default".
func WithNamespace(ns string) Option {
	return func(c *config) error {
		if ns == "" || strings.ContainsAny(ns, " ./*>") {
			return fmt.Errorf("fray: namespace %q: want a non-empty name without spaces, '.', '/', '*' or '>'", ns)
		}
		c.namespace = ns
		return nil
	}
}

// WithCredsFile authenticates with a NATS credentials file.
func WithCredsFile(path string) Option {
	return func(c *config) error {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("fray: creds file: %w", err)
		}
		c.natsOpts = append(c.natsOpts, nats.UserCredentials(path))
		return nil
	}
}

// WithUserPass authenticates with a user and password.
func WithUserPass(user, password string) Option {
	return func(c *config) error { c.natsOpts = append(c.natsOpts, nats.UserInfo(user, password)); return nil }
}

// WithToken authenticates with a token.
func WithToken(token string) Option {
	return func(c *config) error { c.natsOpts = append(c.natsOpts, nats.Token(token)); return nil }
}

// WithTLS verifies the servers with caFile and, when certFile is set,
// presents a client certificate.
func WithTLS(caFile, certFile, keyFile string) Option {
	return func(c *config) error {
		if caFile != "" {
			c.natsOpts = append(c.natsOpts, nats.RootCAs(caFile))
		}
		if certFile != "" || keyFile != "" {
			if certFile == "" || keyFile == "" {
				return errors.New("fray: WithTLS: a client certificate needs both cert and key files")
			}
			c.natsOpts = append(c.natsOpts, nats.ClientCert(certFile, keyFile))
		}
		return nil
	}
}

// WithNATSOptions passes options straight to nats.Connect.
func WithNATSOptions(opts ...nats.Option) Option {
	return func(c *config) error { c.natsOpts = append(c.natsOpts, opts...); return nil }
}

// WithLogger sets the client's logger. Defaults to discarding.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { c.logger = l; return nil }
}

// WithMaxValueSize refuses task arguments larger than n bytes at submit.
// Defaults to 1 GiB.
func WithMaxValueSize(n int64) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("fray: WithMaxValueSize(%d): want > 0", n)
		}
		c.maxValueSize = n
		return nil
	}
}

// envOptions turns the FRAY_NATS_* variables into options.
func envOptions() []Option {
	var out []Option
	if v := os.Getenv(EnvCreds); v != "" {
		out = append(out, WithCredsFile(v))
	}
	if u := os.Getenv(EnvUser); u != "" {
		out = append(out, WithUserPass(u, os.Getenv(EnvPassword)))
	}
	if v := os.Getenv(EnvToken); v != "" {
		out = append(out, WithToken(v))
	}
	if ca, cert := os.Getenv(EnvTLSCA), os.Getenv(EnvTLSCert); ca != "" || cert != "" {
		out = append(out, WithTLS(ca, cert, os.Getenv(EnvTLSKey)))
	}
	if v := os.Getenv(EnvInbox); v != "" {
		out = append(out, WithInboxPrefix(v))
	}
	if v := os.Getenv(EnvOwner); v != "" {
		out = append(out, WithOwner(v))
	}
	return out
}

// WithInboxPrefix makes the client's reply subjects start with prefix
// (nats.go's CustomInboxPrefix), e.g. _INBOX.fray-producer, the inboxes
// fray auth's roles let a user subscribe to.
func WithInboxPrefix(prefix string) Option {
	return func(c *config) error {
		if prefix == "" || strings.ContainsAny(prefix, " *>") || strings.HasSuffix(prefix, ".") {
			return fmt.Errorf("fray: inbox prefix %q: want a subject without wildcards, not ending in '.'", prefix)
		}
		c.natsOpts = append(c.natsOpts, nats.CustomInboxPrefix(prefix))
		return nil
	}
}

// WithOwner sets the owner token of the client's task results
// (fray.results.<owner>.<task>); with fray auth's roles it must be the
// user's name. Defaults to a random token per client.
func WithOwner(owner string) Option {
	return func(c *config) error {
		if owner == "" || strings.ContainsAny(owner, " .*>") {
			return fmt.Errorf("fray: owner %q: want a non-empty token without spaces, '.', '*' or '>'", owner)
		}
		c.owner = owner
		return nil
	}
}

// buildConfig applies the FRAY_NATS_* variables (unless an option says
// WithoutEnvCredentials), then opts.
func buildConfig(opts []Option) (config, error) {
	apply := func(os []Option) (config, error) {
		cfg := config{workers: 1, logger: slog.New(slog.DiscardHandler)}
		for _, o := range os {
			if err := o(&cfg); err != nil {
				return cfg, err
			}
		}
		return cfg, nil
	}
	cfg, err := apply(opts)
	if err != nil || cfg.noEnv {
		return cfg, err
	}
	return apply(append(envOptions(), opts...))
}

// NATSOptionsFromEnv returns the nats.Connect options the FRAY_NATS_*
// variables ask for (credentials, TLS files): what Connect applies, for
// processes that dial NATS themselves (fray-broker).
func NATSOptionsFromEnv() ([]nats.Option, error) {
	var cfg config
	for _, o := range envOptions() {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	return cfg.natsOpts, nil
}

// Connect connects to the cluster named by spec (see ParseSpec; "" means
// local). FRAY_NATS_* environment variables supply credentials and TLS
// files for a remote cluster (an in-process one ignores them); options
// given here apply after them.
func Connect(ctx context.Context, spec string, opts ...Option) (*Client, error) {
	sp, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	if len(sp.URLs) == 0 {
		// The in-process broker has no TLS and no authentication: the
		// FRAY_NATS_* credentials are for the clusters elsewhere.
		opts = append([]Option{WithoutEnvCredentials()}, opts...)
	}
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	c := &Client{spec: sp, log: cfg.logger, namespace: namespaceFor(cfg.namespace)}
	// In-process workers hand this client to every handler.
	handlerCtx := func(ctx context.Context) context.Context { return WithClient(ctx, c) }
	url := strings.Join(sp.URLs, ",")
	if len(sp.URLs) == 0 { // local, or ray/iris without a broker: run one here
		lo := cluster.LocalOptions{
			Broker:  broker.Options{StoreDir: cfg.storeDir, Port: -1},
			Workers: cfg.workers, NoWorkers: cfg.workers == 0,
			// Close shuts the broker down right after the workers stop, so
			// no result could be collected after a long drain: running
			// tasks get localDrainTimeout, then are cancelled.
			Worker: worker.Options{Registry: cfg.registry, Concurrency: cfg.concurrency, HandlerContext: handlerCtx,
				DrainTimeout: localDrainTimeout},
			Logger: cfg.logger,
		}
		if cfg.registry == nil {
			cfg.registry = tasks.NewRegistry() // shared by the workers, so Register can add to it
		}
		if err := worker.RegisterBuiltins(cfg.registry); err != nil && !errors.Is(err, tasks.ErrDuplicate) {
			return nil, err
		}
		lo.Worker.Registry = cfg.registry
		if cfg.workers > 0 {
			c.localReg = cfg.registry
		}
		if sp.Kind == SpecRay || sp.Kind == SpecIris {
			b, err := cluster.Backend(sp.Kind, sp.Params)
			if err != nil {
				return nil, err
			}
			lo.Services.Backends = append(lo.Services.Backends, b)
			lo.Services.DefaultBackend = b.Name()
		}
		c.local, err = cluster.StartLocal(ctx, lo)
		if err != nil {
			return nil, err
		}
		c.closers = append(c.closers, c.local.Stop)
		url = c.local.URL()
	}
	// nats.go prints async errors to stderr by default; fray returns the
	// ones that matter (a refused publish or subscription) from the call
	// that caused them, and logs the rest.
	logAsync := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		cfg.logger.Warn("nats async error", "err", err)
	})
	nopts := append([]nats.Option{nats.Name("fray-client"), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond), logAsync}, cfg.natsOpts...)
	c.nc, err = nats.Connect(url, nopts...)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("fray: connect to %s: %w", url, err)
	}
	if c.js, err = jetstream.New(c.nc); err != nil {
		c.Close()
		return nil, err
	}
	if c.store, err = objects.New(ctx, c.js, objects.Options{}); err != nil {
		c.Close()
		return nil, fmt.Errorf("fray: %w (is %s a provisioned fray cluster? start fray-broker there)", err, url)
	}
	if c.producer, err = tasks.NewProducer(ctx, c.nc, tasks.ProducerOptions{Objects: c.store, MaxValueSize: cfg.maxValueSize, Logger: cfg.logger, Owner: cfg.owner}); err != nil {
		c.Close()
		return nil, err
	}
	if err := errors.Join(c.awaitDispatcher(ctx), c.checkBackend(ctx)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func namespaceFor(explicit string) string {
	if explicit != "" {
		return explicit
	}
	if ns := os.Getenv(EnvNamespace); ns != "" {
		return ns
	}
	if id := os.Getenv(EnvJobID); strings.HasPrefix(id, "/") {
		if ns, _, _ := strings.Cut(id[1:], "/"); ns != "" {
			return ns
		}
	}
	return DefaultNamespace
}

// Close releases the client, and stops its local cluster if it runs one:
// tasks still running there get a second to finish, then are cancelled
// (their results are lost with the in-process broker).
func (c *Client) Close() error {
	var errs []error
	c.closeOnce.Do(func() {
		if c.producer != nil {
			c.producer.Close()
		}
		if c.nc != nil {
			c.nc.Drain()
			c.nc.Close()
		}
		for _, err := range []error{c.ext.actors.close(), c.ext.jobs.close()} {
			if err != nil {
				errs = append(errs, err)
			}
		}
		for i := len(c.closers) - 1; i >= 0; i-- {
			if err := c.closers[i](); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

// NATS is the client's connection.
func (c *Client) NATS() *nats.Conn { return c.nc }

// JetStream is the client's JetStream context.
func (c *Client) JetStream() jetstream.JetStream { return c.js }

// Namespace is the namespace of the client's jobs and actors.
func (c *Client) Namespace() string { return c.namespace }

// Spec is the spec the client connected with.
func (c *Client) Spec() Spec { return c.spec }

// URL is the NATS URL the client is connected to: what a process started
// from here should use as FRAY_CLUSTER_SPEC.
func (c *Client) URL() string { return c.nc.ConnectedUrlRedacted() }

// Objects is the client's object store.
func (c *Client) Objects() *objects.Store { return c.store }

// Producer is the client's task producer.
func (c *Client) Producer() *tasks.Producer { return c.producer }

// Workers lists the live workers, read from the registry now (nil if it
// cannot be read within 10 s; ListWorkers says why).
func (c *Client) Workers() []broker.WorkerInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := c.ListWorkers(ctx)
	return out
}

// ListWorkers reads the live workers' records, sorted by id.
func (c *Client) ListWorkers(ctx context.Context) ([]broker.WorkerInfo, error) {
	return registry.List(ctx, c.js)
}

// Pools is the client's view of the pool directory: what each pool's live
// workers serve, kept current without following lease renewals.
func (c *Client) Pools() *registry.View { return c.producer.Workers() }

var (
	currentMu sync.Mutex
	current   *Client
)

// Current returns the process's default client, connecting it on first
// use from FRAY_CLUSTER_SPEC. Inside a fray job or task this reaches the
// cluster running it.
func Current() (*Client, error) {
	currentMu.Lock()
	defer currentMu.Unlock()
	if current != nil {
		return current, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Connect(ctx, os.Getenv(EnvClusterSpec))
	if err != nil {
		return nil, err
	}
	current = c
	return c, nil
}

type clientKey struct{}

// WithClient returns a context carrying c; FromContext reads it. Workers
// put their client in every handler's context this way, so actor handles
// decoded from a task's argument can be called directly.
func WithClient(ctx context.Context, c *Client) context.Context {
	ctx = context.WithValue(ctx, clientKey{}, c)
	if ac, err := c.Actors(ctx); err == nil {
		ctx = actors.ContextWithClient(ctx, ac)
	}
	return ctx
}

// FromContext returns the client carried by ctx, else Current().
func FromContext(ctx context.Context) (*Client, error) {
	if c, ok := ctx.Value(clientKey{}).(*Client); ok {
		return c, nil
	}
	return Current()
}
