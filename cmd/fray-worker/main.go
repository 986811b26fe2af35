// Command fray-worker is the fray worker daemon, one per host: it serves
// tasks of one pool (registered Go built-ins, --exec shell handlers and,
// with --python, Python functions), hosts actors (Go and Python) and runs
// job processes, and drains on SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/auth"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/cluster"
	"github.com/frayhq/fray/internal/daemon"
	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/tasks"
	"github.com/frayhq/fray/worker"
	"github.com/nats-io/nats.go"
)

func main() { daemon.Exit("fray-worker", runMain(os.Args[1:])) }

// multi is a repeatable flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// optionalInt is an int flag whose default is computed from other flags:
// its help names the default in words, and set says whether it was given.
type optionalInt struct {
	n   int
	set bool
}

func (o *optionalInt) String() string {
	if o == nil || !o.set {
		return ""
	}
	return strconv.Itoa(o.n)
}

func (o *optionalInt) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return errors.New("want a whole number")
	}
	o.n, o.set = n, true
	return nil
}

func runMain(args []string) error {
	fs := flag.NewFlagSet("fray-worker", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: fray-worker [flags]\n\nServes fray tasks, actors and jobs on this host. SIGTERM drains: running tasks\nfinish within --drain-timeout, the rest go back to the queue.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nEnvironment:\n"+
			"  FRAY_CLUSTER_SPEC      the cluster URL when --nats is not given\n"+
			"  FRAY_NATS_CREDS, FRAY_NATS_USER, FRAY_NATS_PASSWORD, FRAY_NATS_TOKEN,\n"+
			"  FRAY_NATS_CA, FRAY_NATS_CERT, FRAY_NATS_KEY\n"+
			"                         NATS credentials and TLS files (never passed on to job processes)\n"+
			"  FRAY_WORKER_ID         the worker id its credentials allow (a `fray auth init` worker's .env sets it)\n"+
			"  %s   lease of this worker's actors (default 10s): a SIGKILLed\n"+
			"                         worker's actors restart elsewhere about this long after it dies\n", actors.EnvLeaseTTL)
	}
	natsURL := fs.String("nats", os.Getenv(fray.EnvClusterSpec), "cluster URL (nats://host:4222); defaults to $FRAY_CLUSTER_SPEC")
	id := fs.String("id", os.Getenv(auth.EnvWorkerID), "worker id (default $"+auth.EnvWorkerID+", which a `fray auth init` worker's credentials set, else the one id the credentials allow, else <hostname>-<random>); credentials that fix another id are refused at start")
	pool := fs.String("pool", "", "pool whose tasks this worker serves (default: the one pool its credentials allow, else \""+tasks.DefaultPool+"\")")
	concurrency := fs.Int("concurrency", 0, "task slots (default: number of CPUs)")
	var prefetch optionalInt
	fs.Var(&prefetch, "prefetch", "hold up to `N` tasks beyond the slots while tasks are short, so a slot that frees starts the next\n"+
		"without a round trip to the broker (default: 8 per slot; 0: never more tasks than free slots). A worker holds only\n"+
		"as many as its slots start within about 5ms at the recent pace, so long tasks still spread over the pool's workers,\n"+
		"and hands back a held task that waited a second")
	var attrs, execs, secrets multi
	fs.Var(&attrs, "attr", "attribute k=v for placement, e.g. region=us-east1, preemptible=false (repeatable)")
	fs.Var(&execs, "exec", "NAME=COMMAND: serve task NAME by running COMMAND in /bin/sh, argument as JSON on stdin, JSON result on stdout (repeatable)")
	fs.Var(&secrets, "secret", "NAME=FILE: a job that asks for NAME with --env-from-worker gets FILE's contents in NAME, read at each start; the secret is stored nowhere in the cluster (repeatable)")
	jobEnv := fs.String("job-env", "", "FILE of NAME=VALUE lines (a `fray auth init` .env file, say) added to every job process's environment: the credentials its jobs (and its Python processes, which run producers' code) talk to fray with. Neither ever inherits this worker's own credentials ("+strings.Join(jobs.CredentialVars, ", ")+"); without --job-env they get none")
	execMax := fs.String("exec-max-output", "64m", "how much an --exec command may print on stdout (e.g. 64m, 1g); past it the command is killed and its task fails as too large")
	drain := fs.Duration("drain-timeout", 30*time.Second, "on SIGTERM, how long running tasks may finish before they are handed back (0: at once)")
	ackWait := fs.Duration("ack-wait", 30*time.Second, "task lease: a task whose worker stops heartbeating for this long runs elsewhere")
	leaseTTL := fs.Duration("lease-ttl", 6*time.Second, "registry lease: a worker silent this long is presumed dead")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	jobCPU := fs.Float64("cpu", 0, "CPU cores this worker offers to jobs (default: all cores)")
	jobRAM := fs.String("ram", "", "RAM this worker offers to jobs, e.g. 64g (default: the host's memory)")
	jobGPU := fs.String("gpu", "", "GPUs this worker offers to jobs as VARIANT:COUNT, e.g. H100:8")
	jobTPU := fs.String("tpu", "", "TPU slice type this VM belongs to, e.g. v5e-16; offers that type's chips per VM (set --attr tpu-name=SLICE too)")
	jobGrace := fs.Duration("job-grace", 10*time.Second, "a stopped job's processes get SIGTERM, then SIGKILL after this")
	metricsAddr := metricsFlag(fs)
	var py pythonFlags
	fs.Var(pythonFlag{&py.interpreter}, "python", "serve Python: run @frayhq.task functions, @frayhq.actor classes and pickled callables (py.call, py.object)\n"+
		"in persistent Python processes (python -m frayhq.runtime); --python=INTERPRETER (or --python INTERPRETER)\n"+
		"picks the interpreter, default python3 on PATH; it needs the frayhq package importable. Callable Python jobs\n"+
		"(python3 -m frayhq.job) run with it too, --python-path first on their PYTHONPATH")
	fs.IntVar(&py.procs, "python-procs", 0, "how many Python processes serve tasks, one task each at a time (default: --concurrency);\n"+
		"each Python actor gets a process of its own besides")
	fs.Var(&py.imports, "python-import", "MODULE: import MODULE in every Python process at start and serve the functions and classes it\n"+
		"registers with @frayhq.task / @frayhq.actor; an import error stops the worker (exit 2) with the traceback (repeatable)")
	fs.Var(&py.paths, "python-path", "DIR: put DIR first on the Python module search path (PYTHONPATH; frayhq itself may be found there) (repeatable)")
	if err := fs.Parse(joinPythonValue(args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return daemon.ErrFlags
	}
	if fs.NArg() > 0 {
		return daemon.Usagef("unexpected arguments %q", fs.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return daemon.Usagef("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	sp, err := fray.ParseSpec(*natsURL)
	if err != nil || sp.Kind != fray.SpecNATS {
		return daemon.Usagef("--nats %q: want nats://host:port of a running fray-broker (or set %s)", *natsURL, fray.EnvClusterSpec)
	}
	// Every flag is checked before connecting: a mistake is reported as
	// such, not hidden behind a cluster that is not up yet.
	switch {
	case *id != "" && worker.CheckID(*id) != nil:
		return daemon.Usagef("--id %q: want letters, digits, '-', '_', '=', '.' and '/'", *id)
	case *id != "" && os.Getenv(auth.EnvWorkerID) != "" && *id != os.Getenv(auth.EnvWorkerID):
		return daemon.Usagef("--id %q, but $%s (set by the worker's credentials file) is %q: a worker's credentials fix its id", *id, auth.EnvWorkerID, os.Getenv(auth.EnvWorkerID))
	case *pool != "" && taskwire.CheckPool(*pool) != nil:
		return daemon.Usagef("--pool %q: want a non-empty name without spaces, '.', '*' or '>'", *pool)
	case *concurrency < 0:
		return daemon.Usagef("--concurrency %d: want at least 1, or 0 for the number of CPUs", *concurrency)
	case prefetch.n < 0:
		return daemon.Usagef("--prefetch %d: want 0 or more tasks", prefetch.n)
	case *drain < 0:
		return daemon.Usagef("--drain-timeout %s: want 0 or a positive duration", *drain)
	case *ackWait < 300*time.Millisecond:
		return daemon.Usagef("--ack-wait %s: want at least 300ms", *ackWait)
	case *leaseTTL < time.Second:
		return daemon.Usagef("--lease-ttl %s: want at least 1s", *leaseTTL)
	case *jobGrace < 0:
		return daemon.Usagef("--job-grace %s: want 0 or a positive duration", *jobGrace)
	case *jobCPU < 0:
		return daemon.Usagef("--cpu %g: want a positive number of cores, or 0 for all", *jobCPU)
	}
	if !prefetch.set {
		prefetch.n = worker.DefaultPrefetch(*concurrency)
	}
	if err := py.check(); err != nil {
		return err
	}
	attributes := map[string]string{}
	for _, a := range attrs {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return daemon.Usagef("--attr %q: want key=value", a)
		}
		attributes[k] = v
	}
	reg := tasks.NewRegistry()
	if err := worker.RegisterBuiltins(reg); err != nil {
		return err
	}
	maxOutput, err := jobs.ParseBytes(*execMax)
	if err != nil || maxOutput <= 0 {
		return daemon.Usagef("--exec-max-output %q: want a positive size such as 64m or 1g", *execMax)
	}
	for _, e := range execs {
		name, command, ok := strings.Cut(e, "=")
		if !ok || name == "" || strings.TrimSpace(command) == "" {
			return daemon.Usagef("--exec %q: want NAME=COMMAND", e)
		}
		if err := reg.Handle(name, worker.ExecHandler(command, worker.ExecMaxOutput(maxOutput))); err != nil {
			return daemon.Usagef("--exec %q: %w", e, err)
		}
	}
	jro, err := jobRunnerOptions(*jobCPU, *jobRAM, *jobGPU, *jobTPU, *jobGrace)
	if err != nil {
		return daemon.UsageError{Err: err}
	}
	if jro.Secrets, err = secretFiles(secrets); err != nil {
		return daemon.UsageError{Err: err}
	}
	if jro.Environ, err = jobEnviron(*jobEnv); err != nil {
		return daemon.UsageError{Err: err}
	}
	jro.Python, jro.PythonPath = py.interpreter, py.paths

	wm, err := listenMetrics(*metricsAddr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A broker busy with thousands of workers starting at once may time
	// out a set-up request: try again with backoff for up to two minutes.
	var client *fray.Client
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = broker.Retry(cctx, log, "connect to "+*natsURL, func(sctx context.Context) (err error) {
		client, err = fray.Connect(sctx, *natsURL)
		if errors.Is(err, fray.ErrBadSpec) || errors.Is(err, nats.ErrAuthorization) {
			return broker.Permanent(err)
		}
		return err
	})
	cancel()
	if err != nil {
		return err
	}
	defer client.Close()
	// The worker's credentials may fix its id and pool (a worker user of
	// `fray auth init` may write only its own registry entry and pull
	// only its pool): refuse a mismatch now, not with a registration or
	// a pull that times out.
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	*id, *pool, err = worker.Identify(ictx, client.NATS(), *id, *pool)
	cancel()
	if errors.Is(err, worker.ErrIdentity) || errors.Is(err, worker.ErrPool) {
		return daemon.StartError{Err: err}
	}
	if err != nil {
		log.Warn("cannot check this worker's id and pool against its credentials; registering unchecked", "id", *id, "pool", *pool, "err", err)
	}
	// The Python runtime starts (and its imports succeed) before the
	// worker registers anything.
	rt, err := py.start(ctx, client.NATS(), *natsURL, jro.Environ, *concurrency, log)
	if err != nil {
		return err
	}
	po := cluster.PluginOptions{NATSURL: *natsURL, Logger: log, JobRunner: jro}
	if rt != nil {
		defer rt.Close() // after the worker drained: no task runs any more
		if err := rt.RegisterTasks(reg); err != nil {
			return daemon.StartError{Err: fmt.Errorf("--python: %w", err)}
		}
		po.ActorClasses = rt.RegisterActors
	}
	plugins, err := cluster.Plugins(po)
	if err != nil {
		return err
	}
	if *drain == 0 {
		*drain = time.Nanosecond // hand running tasks back at once (0 in Options means the default)
	}
	wo := worker.Options{
		ID: *id, Pool: *pool, Concurrency: *concurrency, Prefetch: prefetch.n, Attributes: attributes, Registry: reg,
		AckWait: *ackWait, DrainTimeout: *drain, LeaseTTL: *leaseTTL, Plugins: plugins, Logger: log,
		HandlerContext: func(ctx context.Context) context.Context { return fray.WithClient(ctx, client) },
		Objects:        client.Objects(),
	}
	var w *worker.Worker
	wm.observe(&wo, plugins, &w)
	w, err = worker.New(client.NATS(), wo)
	if err != nil {
		return err
	}
	wm.serve(ctx, log)
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx) }()
	// Say ready once this worker is registered and its pool's directory
	// lists its functions: from then on every client sees them (a
	// submission is not refused as unknown). A broker without the
	// directory (an older fray-broker) never lists them: say ready anyway
	// after directoryWait.
	const directoryWait = 10 * time.Second
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var registeredAt time.Time
	for {
		select {
		case err := <-ran:
			return err
		case <-tick.C:
		}
		if !w.Registered() {
			continue
		}
		if registeredAt.IsZero() {
			registeredAt = time.Now()
		}
		listed := true
		for _, fn := range w.Info().Handlers {
			if served, _ := client.Pools().Serves(w.Info().Pool, fn); !served {
				listed = false
				break
			}
		}
		if !listed && time.Since(registeredAt) < directoryWait {
			continue
		}
		if !listed {
			log.Warn("the pool directory does not list this worker's functions; is fray-broker of this version running?", "bucket", broker.BucketPools)
		}
		fmt.Printf("fray-worker ready id=%s pool=%s\n", w.ID(), *pool)
		return <-ran
	}
}
