// Package cluster composes fray's parts into running processes: the
// cluster-side services that run beside a broker (actor supervisor, job
// dispatcher), the plugins every worker runs (actor host, job runner), and a
// whole local cluster in one process for `fray up` and FRAY_CLUSTER_SPEC=local.
// fray-broker, fray-worker, `fray up` and the root client's local mode all
// compose through here, so each part is wired once.
package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/dispatcher/iris"
	"github.com/frayhq/fray/dispatcher/ray"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/registry"
	"github.com/frayhq/fray/worker"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Service is a cluster-side loop that runs until ctx ends.
type Service struct {
	Name string
	Run  func(ctx context.Context) error
	// Ready, if not nil, is closed once the service answers requests; nil
	// means it has nothing to answer before Run starts.
	Ready <-chan struct{}
}

// WaitReady waits until every service that says when it is ready is, ctx
// ends, or failed is closed (a service's Run returned before it was
// ready). A process prints or reports "ready" only after this.
func WaitReady(ctx context.Context, services []Service, failed <-chan struct{}) error {
	for _, s := range services {
		if s.Ready == nil {
			continue
		}
		select {
		case <-s.Ready:
		case <-ctx.Done():
			return ctx.Err()
		case <-failed:
			return fmt.Errorf("cluster: %s stopped before it was ready", s.Name)
		}
	}
	return nil
}

// ServiceOptions configures the cluster-side services.
type ServiceOptions struct {
	// Backends are the external job backends (Ray, Iris) the dispatcher
	// may place jobs on, besides fray's own workers.
	Backends []dispatcher.Backend
	// DefaultBackend names the backend for jobs that name none. Empty
	// means native (fray workers).
	DefaultBackend string
	// JobStartupGrace is how long after the dispatcher starts a job that no
	// live worker can run stays PENDING (workers may still be registering)
	// before it fails. Defaults to the dispatcher's 10 s.
	JobStartupGrace time.Duration
	// ActorRestartWait is how long the actor supervisor waits for an
	// eligible worker to restart an actor on before declaring it dead.
	// Defaults to 30 s.
	ActorRestartWait time.Duration
	// NoSupervisor and NoDispatcher switch those services off.
	NoSupervisor bool
	NoDispatcher bool
	// NoDirectory switches off the pool directory's maintainer (another
	// broker of the cluster must run one, or producers and workers learn
	// no pool's functions).
	NoDirectory bool
	// ExpiryGrace is how long the liveness deciders (dispatcher,
	// supervisor, directory) wait after a worker's or actor's lease
	// expired for its live holder to take it back, before declaring it
	// lost. Defaults to broker.ExpiryGrace.
	ExpiryGrace time.Duration
	Logger      *slog.Logger
}

// Services returns the services to run beside a broker.
func Services(nc *nats.Conn, js jetstream.JetStream, o ServiceOptions) ([]Service, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	var out []Service
	// Wiring points: the pool directory, the actor supervisor and the job
	// dispatcher add themselves here.
	if !o.NoDirectory {
		m := registry.NewMaintainer(js, registry.MaintainerOptions{ExpiryGrace: o.ExpiryGrace, Logger: o.Logger.With("service", "registry")})
		out = append(out, Service{Name: "pool directory", Run: m.Run})
	}
	if !o.NoSupervisor {
		sup := actors.NewSupervisor(nc, js, actors.SupervisorOptions{PlacementTimeout: o.ActorRestartWait, ExpiryGrace: o.ExpiryGrace, Logger: o.Logger.With("service", "actors")})
		out = append(out, Service{Name: "actor supervisor", Run: sup.Run})
	}
	if !o.NoDispatcher {
		d, err := dispatcher.New(nc, js, dispatcher.Options{Backends: o.Backends, ExpiryGrace: o.ExpiryGrace, DefaultBackend: o.DefaultBackend, StartupGrace: o.JobStartupGrace, Logger: o.Logger.With("service", "dispatcher")})
		if err != nil {
			return nil, err
		}
		out = append(out, Service{Name: "job dispatcher", Run: d.Run, Ready: d.Ready()})
	}
	return out, nil
}

// PluginOptions configures the plugins of a worker.
type PluginOptions struct {
	// NATSURL is the cluster URL that job processes receive as
	// FRAY_CLUSTER_SPEC.
	NATSURL string
	Logger  *slog.Logger
	// JobRunner configures the native job runner (capacity offered to
	// jobs, registered functions). Its ClusterSpec defaults to NATSURL.
	JobRunner jobs.RunnerOptions
	// ActorClasses, if set, registers more actor classes beside the
	// built-ins (a language runtime's).
	ActorClasses func(*actors.Registry) error
}

// Plugins returns the plugins every worker runs beside its task executor.
func Plugins(o PluginOptions) ([]worker.Plugin, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	var out []worker.Plugin
	// Wiring points: the actor host and the job runner add themselves here.
	areg := actors.NewRegistry()
	if err := actors.RegisterBuiltins(areg); err != nil {
		return nil, err
	}
	if o.ActorClasses != nil {
		if err := o.ActorClasses(areg); err != nil {
			return nil, err
		}
	}
	out = append(out, actors.NewHost(areg, actors.HostOptions{Logger: o.Logger.With("plugin", "actors")}))
	ro := o.JobRunner
	if ro.ClusterSpec == "" {
		ro.ClusterSpec = o.NATSURL
	}
	if ro.Logger == nil {
		ro.Logger = o.Logger.With("plugin", "jobs")
	}
	runner, err := jobs.NewRunner(ro)
	if err != nil {
		return nil, err
	}
	out = append(out, runner)
	return out, nil
}

// Backend builds an external job backend from a cluster spec's kind
// ("ray", "iris") and parameters: address/namespace (ray),
// controller/user (iris), and for both name (the backend's name for
// ResourceConfig.TargetCluster; defaults to the kind) and token (sent as a
// bearer token, for heads behind an authenticating proxy).
func Backend(kind string, params map[string]string) (dispatcher.Backend, error) {
	switch kind {
	case "ray":
		return ray.New(ray.Options{Name: params["name"], Address: params["address"], Namespace: params["namespace"], AuthToken: params["token"]})
	case "iris":
		return iris.New(iris.Options{Name: params["name"], Controller: params["controller"], User: params["user"], AuthToken: params["token"]})
	}
	return nil, fmt.Errorf("cluster: no %q backend in this build (want ray or iris)", kind)
}
