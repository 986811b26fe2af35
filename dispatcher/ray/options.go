package ray

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/frayhq/fray/dispatcher"
)

// Options configures a Ray backend.
type Options struct {
	// Name is the backend's name, matched by ResourceConfig.TargetCluster.
	// Defaults to "ray".
	Name string
	// Address is the Ray dashboard's base URL, e.g. "http://head:8265".
	// Required.
	Address string
	// Namespace scopes the backend on a shared Ray cluster: it goes into
	// every submission id and the job metadata ("fray_namespace"), and List
	// returns only jobs submitted with it. Defaults to "" (no scoping).
	Namespace string
	// AuthToken, when set, is sent as "Authorization: Bearer <token>" (for
	// dashboards behind an authenticating proxy). Defaults to none.
	AuthToken string
	// Headers are added to every request (e.g. a proxy's own auth header).
	// Defaults to none.
	Headers http.Header
	// HTTPClient makes the requests. Defaults to a client with a 30 s timeout.
	HTTPClient *http.Client
	// Retry is the policy for connection errors and 5xx answers. Defaults to
	// DefaultRetry.
	Retry Retry
	// ClusterSpec, when set, is given to every job as FRAY_CLUSTER_SPEC, so
	// fray.Current() and child jobs inside it reach fray's broker. Set it
	// only to an address the Ray nodes can reach (e.g.
	// "nats://broker.internal:4222"); defaults to none (the variable is not
	// set: the dispatcher's own broker URL is often loopback).
	ClusterSpec string
}

// Retry is the backoff for connection errors and 5xx answers (see
// dispatcher.Retry).
type Retry = dispatcher.Retry

// DefaultRetry is the policy used when Options.Retry is zero.
var DefaultRetry = dispatcher.DefaultRetry

// Backend is a dispatcher.Backend over Ray's Jobs REST API.
type Backend struct {
	name    string
	base    string
	ns      string
	headers http.Header
	hc      *http.Client
	retry   Retry
	spec    string
}

var (
	_ dispatcher.Backend = (*Backend)(nil)
	_ dispatcher.Finder  = (*Backend)(nil)
	_ dispatcher.Located = (*Backend)(nil)
)

// New validates opts and returns the backend. It does not contact Ray.
func New(opts Options) (*Backend, error) {
	if opts.Address == "" {
		return nil, errors.New("ray: Options.Address is required (the dashboard URL, e.g. http://head:8265)")
	}
	u, err := url.Parse(opts.Address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("ray: Options.Address %q: want an http(s) URL such as http://head:8265", opts.Address)
	}
	if strings.ContainsAny(opts.Namespace, "/ \t\n") {
		return nil, fmt.Errorf("ray: Options.Namespace %q must not contain '/' or spaces", opts.Namespace)
	}
	b := &Backend{
		name:    opts.Name,
		base:    strings.TrimRight(opts.Address, "/"),
		ns:      opts.Namespace,
		headers: opts.Headers.Clone(),
		hc:      opts.HTTPClient,
		retry:   opts.Retry.WithDefaults(),
		spec:    opts.ClusterSpec,
	}
	if b.name == "" {
		b.name = "ray"
	}
	if b.headers == nil {
		b.headers = http.Header{}
	}
	if opts.AuthToken != "" {
		b.headers.Set("Authorization", "Bearer "+opts.AuthToken)
	}
	if b.hc == nil {
		b.hc = &http.Client{Timeout: 30 * time.Second}
	}
	return b, nil
}

// Name returns the configured name.
func (b *Backend) Name() string { return b.name }
