package iris

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/dispatcher/iris/internal/finelog/loggingpb/loggingpbconnect"
	"github.com/frayhq/fray/dispatcher/iris/internal/iris/clusterpb/clusterpbconnect"
)

// Options configures an Iris backend.
type Options struct {
	// Name is the backend's name, matched by ResourceConfig.TargetCluster.
	// Defaults to "iris".
	Name string
	// Controller is the Iris controller's base URL, e.g.
	// "http://controller:10000". Required.
	Controller string
	// User is the first component of every Iris job name: fray job
	// "/ns/train" becomes Iris job "/<User>/ns.train". Defaults to "fray".
	User string
	// AuthToken, when set, is sent as "Authorization: Bearer <token>".
	// Defaults to none (a local controller trusts loopback callers).
	AuthToken string
	// Headers are added to every request. Defaults to none.
	Headers http.Header
	// HTTPClient makes the requests. Defaults to a client with a 30 s timeout.
	HTTPClient *http.Client
	// Retry is the policy for Unavailable answers and connection errors.
	// Defaults to DefaultRetry.
	Retry Retry
	// LogSettle is how long after a job is first seen finished it is still
	// reported running (or pending), so that a poller reading Logs until the
	// job is over also gets the last lines: an Iris worker publishes a task's
	// final state before its last log flush reaches the log server. Defaults
	// to 2 s; negative disables it.
	LogSettle time.Duration
	// Now gives the clock: today's date for LaunchJob's client_revision_date
	// and the LogSettle timing. Defaults to time.Now.
	Now func() time.Time
	// ClusterSpec, when set, is given to every job as FRAY_CLUSTER_SPEC, so
	// fray.Current() and child jobs inside it reach fray's broker. Set it
	// only to an address the Iris workers can reach; defaults to none (the
	// variable is not set: the dispatcher's own broker URL is often
	// loopback).
	ClusterSpec string
}

// Retry is the backoff for connection errors and 5xx answers (see
// dispatcher.Retry).
type Retry = dispatcher.Retry

// DefaultRetry is the policy used when Options.Retry is zero.
var DefaultRetry = dispatcher.DefaultRetry

// LogProxyPath is where an Iris controller serves its log server's
// finelog.logging.LogService (the endpoint /system/log-server behind the
// controller's endpoint proxy).
const LogProxyPath = "/proxy/system.log-server"

// Backend is a dispatcher.Backend over an Iris controller.
type Backend struct {
	name  string
	base  string
	user  string
	retry Retry
	now   func() time.Time
	spec  string

	settle time.Duration
	// finished holds when each finished job was first seen finished (pruned
	// once well past settle).
	finishedMu sync.Mutex
	finished   map[string]time.Time

	ctl clusterpbconnect.ControllerServiceClient
	// logs are tried in order: the controller's proxy, then the bare path.
	logs    []loggingpbconnect.LogServiceClient
	logPath atomic.Int32 // index into logs of the path that last answered
}

var (
	_ dispatcher.Backend    = (*Backend)(nil)
	_ dispatcher.LogStarter = (*Backend)(nil)
	_ dispatcher.Finder     = (*Backend)(nil)
	_ dispatcher.LogFinder  = (*Backend)(nil)
	_ dispatcher.Located    = (*Backend)(nil)
)

// New validates opts and returns the backend. It does not contact Iris.
func New(opts Options) (*Backend, error) {
	if opts.Controller == "" {
		return nil, errors.New("iris: Options.Controller is required (the controller URL, e.g. http://controller:10000)")
	}
	u, err := url.Parse(opts.Controller)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("iris: Options.Controller %q: want an http(s) URL such as http://controller:10000", opts.Controller)
	}
	user := opts.User
	if user == "" {
		user = "fray"
	}
	if strings.ContainsAny(user, "/:") || strings.TrimSpace(user) == "" {
		return nil, fmt.Errorf("iris: Options.User %q must be one path component (no '/' or ':')", user)
	}
	b := &Backend{
		name:     opts.Name,
		base:     strings.TrimRight(opts.Controller, "/"),
		user:     user,
		retry:    opts.Retry.WithDefaults(),
		now:      opts.Now,
		settle:   opts.LogSettle,
		spec:     opts.ClusterSpec,
		finished: map[string]time.Time{},
	}
	if b.settle == 0 {
		b.settle = 2 * time.Second
	}
	if b.name == "" {
		b.name = "iris"
	}
	if b.now == nil {
		b.now = time.Now
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	headers := opts.Headers.Clone()
	if headers == nil {
		headers = http.Header{}
	}
	if opts.AuthToken != "" {
		headers.Set("Authorization", "Bearer "+opts.AuthToken)
	}
	var doer connect.HTTPClient = hc
	if len(headers) > 0 {
		doer = headerClient{hc: hc, h: headers}
	}
	b.ctl = clusterpbconnect.NewControllerServiceClient(doer, b.base)
	b.logs = []loggingpbconnect.LogServiceClient{
		loggingpbconnect.NewLogServiceClient(doer, b.base+LogProxyPath),
		loggingpbconnect.NewLogServiceClient(doer, b.base),
	}
	return b, nil
}

// Name returns the configured name.
func (b *Backend) Name() string { return b.name }

// headerClient adds fixed headers to every request.
type headerClient struct {
	hc *http.Client
	h  http.Header
}

func (c headerClient) Do(r *http.Request) (*http.Response, error) {
	for k, vs := range c.h {
		r.Header[k] = append([]string(nil), vs...)
	}
	return c.hc.Do(r)
}
