package broker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Sync policies for Options.Sync.
const (
	// SyncInterval fsyncs the store every SyncEvery (1 s by default): a
	// machine crash can lose at most that window of acknowledged writes, a
	// process crash loses nothing.
	SyncInterval = "interval"
	// SyncAlways fsyncs before every acknowledgement: nothing acknowledged is
	// ever lost, at roughly a tenth of the throughput.
	SyncAlways = "always"
)

// Options configures an in-process nats-server. The zero value is a
// single-node broker on 127.0.0.1:4222 storing into a fresh temporary
// directory.
type Options struct {
	// StoreDir is the JetStream store directory. Defaults to a new temporary
	// directory, removed by Shutdown.
	StoreDir string
	// Host is the client listen address. Defaults to 127.0.0.1.
	Host string
	// Port is the client port. 0 means 4222, -1 a random free port.
	Port int
	// HTTPPort is the monitoring port. 0 disables it, -1 picks a random port.
	HTTPPort int
	// ServerName names this node; required (and unique) in a cluster.
	// Defaults to a name nats-server derives.
	ServerName string
	// ClusterName, ClusterHost, ClusterPort and Routes join this node to a
	// cluster. A cluster needs ClusterName and at least one route.
	ClusterName string
	ClusterHost string // defaults to Host
	ClusterPort int    // defaults to 6222; -1 picks a random port
	Routes      []string
	// ConfigFile is a normal nats-server configuration file (TLS, auth,
	// accounts, ...). Fields set above override it.
	ConfigFile string
	// Sync is SyncInterval (default) or SyncAlways.
	Sync string
	// SyncEvery is the fsync interval under SyncInterval. Defaults to 1 s
	// (nats-server's own default is 2 minutes).
	SyncEvery time.Duration
	// MaxStore caps JetStream file storage in bytes. Defaults to
	// nats-server's default (75% of free disk).
	MaxStore int64
	// Logger receives the server's log. Defaults to discarding it.
	Logger *slog.Logger
	// Debug enables nats-server debug logging.
	Debug bool
}

// Server is a running in-process nats-server.
type Server struct {
	ns      *server.Server
	tempDir string
	opts    *server.Options
}

// ErrBadOptions wraps every configuration error from Start.
var ErrBadOptions = errors.New("broker: bad options")

// ErrPortInUse is matched (errors.Is) by the error Start returns when a port
// it must listen on is taken.
var ErrPortInUse = errors.New("broker: port in use")

// Start configures and starts nats-server with JetStream and waits until it
// accepts connections or ctx ends. It fails at once, without waiting, when
// nats-server cannot start: a port in use (ErrPortInUse), a store path that
// is not a directory (ErrBadOptions), a JetStream error.
func Start(ctx context.Context, o Options) (*Server, error) {
	sopts, tempDir, err := o.serverOptions()
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		if tempDir != "" {
			os.RemoveAll(tempDir)
		}
		return nil, fmt.Errorf("broker: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// nats-server reports a failed start (a listener, JetStream) through
	// Fatalf and carries on without ever becoming ready: catch it.
	fatal := make(chan fatalLog, 1)
	ns.SetLoggerV2(slogAdapter{l: log, fatal: fatal}, o.Debug, false, false)
	ns.Start()
	s := &Server{ns: ns, tempDir: tempDir, opts: sopts}
	wait := 30 * time.Second
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	if err := s.waitReady(ctx, wait, fatal); err != nil {
		s.Shutdown()
		return nil, err
	}
	return s, nil
}

// waitReady polls until the server accepts connections, it reports a fatal
// start error, ctx ends or wait passes.
func (s *Server) waitReady(ctx context.Context, wait time.Duration, fatal <-chan fatalLog) error {
	deadline := time.Now().Add(wait)
	for {
		select {
		case f := <-fatal:
			return s.startError(f)
		default:
		}
		if errors.Is(ctx.Err(), context.Canceled) {
			return fmt.Errorf("broker: start: %w", ctx.Err())
		}
		if s.ns.ReadyForConnections(50 * time.Millisecond) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("broker: nats-server not ready after %s (store %s)", wait.Round(time.Millisecond), s.opts.StoreDir)
		}
	}
}

// fatalLog is one Fatalf call of nats-server.
type fatalLog struct {
	format string
	args   []any
}

type portInUseError struct{ msg string }

func (e portInUseError) Error() string        { return e.msg }
func (e portInUseError) Is(target error) bool { return target == ErrPortInUse }

// startError turns nats-server's fatal log line into an error naming what
// to change.
func (s *Server) startError(f fatalLog) error {
	msg := fmt.Sprintf(f.format, f.args...)
	inUse := strings.Contains(msg, "address already in use")
	for _, a := range f.args {
		if err, ok := a.(error); ok && errors.Is(err, syscall.EADDRINUSE) {
			inUse = true
		}
	}
	if inUse {
		switch {
		case strings.Contains(f.format, "router port"):
			return portInUseError{fmt.Sprintf("broker: cluster port %d on %s is in use; pick another with --cluster-port", s.opts.Cluster.Port, s.opts.Cluster.Host)}
		case strings.Contains(f.format, "monitor"):
			return portInUseError{fmt.Sprintf("broker: monitoring port %d on %s is in use; pick another with --http-port", s.opts.HTTPPort, s.opts.HTTPHost)}
		default:
			return portInUseError{fmt.Sprintf("broker: port %d on %s is in use; pick another with --port", s.opts.Port, s.opts.Host)}
		}
	}
	return fmt.Errorf("broker: nats-server failed to start: %s", msg)
}

func (o Options) serverOptions() (*server.Options, string, error) {
	sopts := &server.Options{}
	if o.ConfigFile != "" {
		fo, err := server.ProcessConfigFile(o.ConfigFile)
		if err != nil {
			return nil, "", fmt.Errorf("%w: config file %s: %v", ErrBadOptions, o.ConfigFile, err)
		}
		sopts = fo
	}
	sopts.JetStream = true
	sopts.NoSigs = true
	if o.Host != "" || sopts.Host == "" {
		sopts.Host = orDefault(o.Host, "127.0.0.1")
	}
	if o.Port != 0 || sopts.Port == 0 {
		sopts.Port = o.Port
		if sopts.Port == 0 {
			sopts.Port = 4222
		}
	}
	if o.HTTPPort != 0 {
		sopts.HTTPHost = sopts.Host
		sopts.HTTPPort = o.HTTPPort
	}
	if o.ServerName != "" {
		sopts.ServerName = o.ServerName
	}
	tempDir := ""
	switch {
	case o.StoreDir != "":
		sopts.StoreDir = o.StoreDir
	case sopts.StoreDir == "":
		d, err := os.MkdirTemp("", "fray-broker-*")
		if err != nil {
			return nil, "", fmt.Errorf("broker: temp store: %w", err)
		}
		sopts.StoreDir, tempDir = d, d
	}
	if fi, err := os.Stat(sopts.StoreDir); err == nil && !fi.IsDir() {
		return nil, "", fmt.Errorf("%w: store %s is a file, not a directory", ErrBadOptions, sopts.StoreDir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("%w: store %s: %v", ErrBadOptions, sopts.StoreDir, err)
	}
	switch o.Sync {
	case "", SyncInterval:
		sopts.SyncInterval = o.SyncEvery
		if sopts.SyncInterval <= 0 {
			sopts.SyncInterval = time.Second
		}
	case SyncAlways:
		sopts.SyncAlways = true
		sopts.SyncInterval = 2 * time.Minute
	default:
		return nil, "", fmt.Errorf("%w: sync %q: want %q or %q", ErrBadOptions, o.Sync, SyncInterval, SyncAlways)
	}
	if o.MaxStore > 0 {
		sopts.JetStreamMaxStore = o.MaxStore
	}
	// nats-server caps every stream at 1,000 consumers unless told
	// otherwise; a large fleet's transient watches (start-up loads, `fray
	// workers`, actor placement) can pass that at once. A config file's own
	// jetstream.limits.default_max_consumers wins.
	if sopts.JetStreamLimits.DefaultMaxConsumers == 0 {
		sopts.JetStreamLimits.DefaultMaxConsumers = -1
	}
	if len(o.Routes) > 0 || o.ClusterName != "" {
		if o.ClusterName == "" {
			return nil, "", fmt.Errorf("%w: routes given without a cluster name", ErrBadOptions)
		}
		if o.ServerName == "" && sopts.ServerName == "" {
			return nil, "", fmt.Errorf("%w: a cluster member needs a server name", ErrBadOptions)
		}
		sopts.Cluster.Name = o.ClusterName
		sopts.Cluster.Host = orDefault(o.ClusterHost, sopts.Host)
		sopts.Cluster.Port = o.ClusterPort
		if sopts.Cluster.Port == 0 {
			sopts.Cluster.Port = 6222
		}
		for _, r := range o.Routes {
			if !strings.Contains(r, "://") {
				r = "nats-route://" + r
			}
			u, err := url.Parse(r)
			if err != nil {
				return nil, "", fmt.Errorf("%w: route %q: %v", ErrBadOptions, r, err)
			}
			sopts.Routes = append(sopts.Routes, u)
		}
	}
	if o.Logger == nil {
		sopts.NoLog = true
	}
	return sopts, tempDir, nil
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// ClientURL is the URL clients connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// StoreDir is the JetStream store directory in use.
func (s *Server) StoreDir() string { return s.opts.StoreDir }

// NATS exposes the underlying nats-server for callers that need it.
func (s *Server) NATS() *server.Server { return s.ns }

// Shutdown stops the server, waits until it has stopped, and removes a
// temporary store. It is safe to call more than once.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	if s.tempDir != "" {
		os.RemoveAll(s.tempDir)
	}
}

type slogAdapter struct {
	l     *slog.Logger
	fatal chan<- fatalLog // the first Fatalf call, for Start
}

func (a slogAdapter) log(level slog.Level, f string, v []any) {
	if a.l.Enabled(context.Background(), level) {
		a.l.Log(context.Background(), level, fmt.Sprintf(f, v...))
	}
}

func (a slogAdapter) Noticef(f string, v ...any) { a.log(slog.LevelInfo, f, v) }
func (a slogAdapter) Warnf(f string, v ...any)   { a.log(slog.LevelWarn, f, v) }
func (a slogAdapter) Errorf(f string, v ...any)  { a.log(slog.LevelError, f, v) }
func (a slogAdapter) Debugf(f string, v ...any)  { a.log(slog.LevelDebug, f, v) }
func (a slogAdapter) Tracef(f string, v ...any)  { a.log(slog.LevelDebug, f, v) }
func (a slogAdapter) Fatalf(f string, v ...any) {
	a.log(slog.LevelError, f, v)
	select {
	case a.fatal <- fatalLog{f, v}:
	default:
	}
}

// RoutedPeers names the cluster nodes this server has a route to now, and
// says how many routes it was configured with.
func (s *Server) RoutedPeers() (names []string, configured int) {
	rz, err := s.ns.Routez(nil)
	if err != nil {
		return nil, len(s.opts.Routes)
	}
	seen := map[string]bool{}
	for _, r := range rz.Routes {
		if r.RemoteName != "" && !seen[r.RemoteName] {
			seen[r.RemoteName] = true
			names = append(names, r.RemoteName)
		}
	}
	slices.Sort(names)
	return names, len(s.opts.Routes)
}
