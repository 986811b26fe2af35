package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
)

func init() {
	register(command{name: "submit", summary: "submit a job: fray submit [flags] -- CMD ARGS... (prints the job id; --wait follows it)", run: runSubmit})
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// submitFlags are fray submit's flags.
type submitFlags struct {
	fs                                       *flag.FlagSet
	set                                      map[string]bool // the flags given
	natsURL, name, ram, disk, tpu, gpu       *string
	zone, workdir, target, groupBy           *string
	cpu                                      *float64
	slices, replicas                         *int
	retriesFailure, retriesPreemption        *int
	env, envFromWorker, regions, constraints listFlag
	nonPreemptible, noAdopt, wait            *bool
	timeout, schedTimeout                    *time.Duration
	bf                                       *backendFlags
}

func newSubmitFlags() *submitFlags {
	fs := newFlags("submit", "[flags] -- CMD ARGS...")
	f := &submitFlags{fs: fs, natsURL: clusterFlag(fs)}
	f.name = fs.String("name", "", "job name: letters, digits, '-', '_', '.' (default: the command's name plus a timestamp)")
	f.cpu = fs.Float64("cpu", 0, "CPU cores per replica (default 1 on fray workers)")
	f.ram = fs.String("ram", "", "RAM per replica, e.g. 4g or 512m")
	f.disk = fs.String("disk", "", "disk per replica, e.g. 100g")
	f.tpu = fs.String("tpu", "", "TPU slice type per slice, e.g. v5e-16, v5p-8, v6e-4; sets replicas to slices × VMs per slice")
	f.slices = fs.Int("slices", 1, "number of TPU slices (with --tpu)")
	f.gpu = fs.String("gpu", "", "GPUs per replica as VARIANT:COUNT, e.g. H100:8 (COUNT defaults to 1)")
	f.replicas = fs.Int("replicas", 0, "number of replicas, gang-scheduled: all start or none (default 1, or what --tpu implies)")
	f.groupBy = fs.String("group-by", "", "place all replicas on workers sharing this attribute's value, e.g. tpu-name")
	fs.Var(&f.env, "env", "environment variable K=V for the job's processes (repeatable); stored in the job record, readable by every worker and viewer: give secrets with --env-from-worker")
	fs.Var(&f.envFromWorker, "env-from-worker", "variable NAME the worker fills in itself, from its --secret NAME=FILE or its own environment, so the value is stored nowhere (repeatable)")
	fs.Var(&f.regions, "region", "region the job may run in (repeatable; * means any)")
	fs.Var(&f.constraints, "constraint", "worker attribute constraint: KEY=VALUE, KEY=V1,V2 (any of), KEY!=VALUE, or KEY (has the attribute) (repeatable)")
	f.zone = fs.String("zone", "", "zone the job must run in")
	f.nonPreemptible = fs.Bool("non-preemptible", false, "run only on workers whose attribute preemptible=false")
	f.timeout = fs.Duration("timeout", 0, "stop the job when an attempt runs longer than this, e.g. 30m (0: no timeout)")
	f.schedTimeout = fs.Duration("scheduling-timeout", 0, "fail the job when it waits this long to be placed, from submission and again after each preemption or retry, e.g. 10m (0: wait forever)")
	f.retriesFailure = fs.Int("max-retries-failure", 0, "rerun the job this many times after a non-zero exit")
	f.retriesPreemption = fs.Int("max-retries-preemption", jobs.DefaultMaxRetriesPreemption, "rerun the job this many times after its worker is lost or drained")
	f.workdir = fs.String("workdir", "", "working directory of the job's processes on the worker")
	f.target = fs.String("target", "", "backend that runs the job, by its configured name (default: the dispatcher's default, native fray workers)")
	f.noAdopt = fs.Bool("no-adopt", false, "fail if a live job of the same name exists, instead of attaching to it")
	f.wait = fs.Bool("wait", false, "follow the job's logs to stdout until it ends; exit 0 only if it SUCCEEDED")
	f.bf = addBackendFlags(fs)
	return f
}

func runSubmit(ctx context.Context, args []string) error {
	f := newSubmitFlags()
	if err := parse(f.fs, args); err != nil {
		return err
	}
	spec, backendTarget, err := f.bf.resolve(*f.natsURL)
	if err != nil {
		return err
	}
	if *f.target == "" {
		*f.target = backendTarget
	}
	req, err := f.request()
	if err != nil {
		return err
	}
	c, err := connect(ctx, spec)
	if err != nil {
		return err
	}
	defer c.Close()
	h, err := c.Submit(ctx, req)
	var ae *jobs.AlreadyExistsError
	if errors.As(err, &ae) {
		fmt.Fprintf(os.Stderr, "fray submit: job %s already exists and is live (drop --no-adopt to adopt it, or pick another --name)\n", ae.ID)
		fmt.Println(ae.ID)
		return exitError{1}
	}
	if err != nil {
		return err
	}
	if h.Adopted() {
		fmt.Fprintf(os.Stderr, "fray submit: job %s was already live: attached to it; it runs its own command, not this one (--no-adopt refuses, or pick another --name)\n", h.ID())
	}
	if !*f.wait {
		if sp, _ := fray.ParseSpec(spec); (sp.Kind == fray.SpecRay || sp.Kind == fray.SpecIris) && len(sp.URLs) == 0 {
			// The dispatcher driving the backend lives in this process:
			// stay until the backend has the job, or it would never get it.
			if err := awaitHandOff(ctx, h); err != nil {
				return err
			}
		}
		fmt.Println(h.ID())
		return nil
	}
	err = followJob(ctx, h, true)
	if ctx.Err() != nil {
		return leaveRunning(ctx, h, spec)
	}
	fmt.Println(h.ID())
	return err
}

// leaveRunning ends a `submit --wait` that a signal interrupted: waiting is
// not owning, so the job keeps running. A backend driven from this process
// gets the job first; the message says where it runs and how to reach it
// from any process. It returns ctx's error (exit 130).
func leaveRunning(ctx context.Context, h *jobs.Handle, spec string) error {
	bctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if sp, _ := fray.ParseSpec(spec); (sp.Kind == fray.SpecRay || sp.Kind == fray.SpecIris) && len(sp.URLs) == 0 {
		if err := awaitHandOff(bctx, h); err != nil {
			fmt.Fprintf(os.Stderr, "fray submit: stopped waiting: %v\n", err)
			fmt.Println(h.ID())
			return ctx.Err()
		}
	}
	where := "on the cluster"
	r, err := h.Info(bctx)
	switch {
	case err != nil:
	case r.Status.Terminal():
		fmt.Fprintf(os.Stderr, "fray submit: stopped waiting; job %s ended %s\n", h.ID(), r.Status)
		fmt.Println(h.ID())
		return ctx.Err()
	case r.ExternalID != "":
		where = fmt.Sprintf("on %s (as %s)", r.Backend, r.ExternalID)
	}
	fmt.Fprintf(os.Stderr, "fray submit: stopped waiting; job %s keeps running %s, reachable by id from any process: "+
		"fray jobs status %s, fray logs -f %s, fray stop %s\n", h.ID(), where, h.ID(), h.ID(), h.ID())
	fmt.Println(h.ID())
	return ctx.Err()
}

// request builds the job request the parsed flags describe. A request the
// command line made invalid is a usage error (exit 2), found before
// connecting; the client validates it again at submit.
func (f *submitFlags) request() (jobs.JobRequest, error) {
	fs := f.fs
	argv := fs.Args()
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "fray submit: no command given; put it after --, e.g. fray submit -- python train.py")
		return jobs.JobRequest{}, errUsage
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if f.set["replicas"] && *f.replicas < 1 {
		return jobs.JobRequest{}, usagef(fs, "--replicas %d: want at least 1", *f.replicas)
	}
	if f.set["slices"] && *f.tpu == "" {
		return jobs.JobRequest{}, usagef(fs, "--slices needs --tpu TYPE; for replicas without TPUs use --replicas N")
	}
	if *f.slices < 1 {
		return jobs.JobRequest{}, usagef(fs, "--slices %d: want at least 1", *f.slices)
	}
	for _, fl := range []struct{ name, v string }{{"ram", *f.ram}, {"disk", *f.disk}} {
		if _, err := jobs.ParseBytes(fl.v); err != nil {
			return jobs.JobRequest{}, usagef(fs, "--%s %q: want a size like 512m, 4g or 1.5t", fl.name, fl.v)
		}
	}
	req := jobs.JobRequest{
		Name:              *f.name,
		Entrypoint:        jobs.Command(argv...),
		Replicas:          *f.replicas,
		Timeout:           *f.timeout,
		SchedulingTimeout: *f.schedTimeout,
		MaxRetriesFailure: *f.retriesFailure,
		Resources:         jobs.ResourceConfig{CPU: *f.cpu, RAM: *f.ram, Disk: *f.disk, Zone: *f.zone, TargetCluster: *f.target},
	}
	if f.set["max-retries-preemption"] {
		req.MaxRetriesPreemption = jobwire.Ptr(*f.retriesPreemption)
	}
	if req.Name == "" {
		req.Name = defaultJobName(argv[0])
	}
	if len(f.regions) > 0 {
		req.Resources.Regions = f.regions
	}
	if *f.nonPreemptible {
		req.Resources.Preemptible = jobwire.Ptr(false)
	}
	if *f.noAdopt {
		req.AdoptExisting = jobwire.Ptr(false)
	}
	req.Environment.Workdir = *f.workdir
	if err := f.placement(&req); err != nil {
		return jobs.JobRequest{}, err
	}
	check := req
	check.Normalize()
	if err := check.Validate(); err != nil {
		return jobs.JobRequest{}, usagef(fs, "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return req, nil
}

// placement adds the environment, constraints and devices the flags ask
// for to req.
func (f *submitFlags) placement(req *jobs.JobRequest) error {
	fs := f.fs
	if len(f.env) > 0 {
		req.Environment.EnvVars = map[string]string{}
		for _, kv := range f.env {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return usagef(fs, "--env %q: want KEY=VALUE", kv)
			}
			req.Environment.EnvVars[k] = v
		}
	}
	req.Environment.EnvFromWorker = f.envFromWorker
	for _, c := range f.constraints {
		con, err := parseConstraint(c)
		if err != nil {
			return usagef(fs, "%v", err)
		}
		req.Constraints = append(req.Constraints, con)
	}
	if *f.tpu != "" && *f.gpu != "" {
		return usagef(fs, "--tpu and --gpu exclude each other")
	}
	if *f.tpu != "" {
		if err := req.WithTPU(*f.tpu, *f.slices); err != nil {
			return usagef(fs, "--tpu %q: %v", *f.tpu, err)
		}
		if *f.replicas > 0 {
			req.Replicas = *f.replicas
		}
	}
	if *f.gpu != "" {
		variant, count, ok := strings.Cut(*f.gpu, ":")
		n := 1
		if ok {
			var err error
			if n, err = strconv.Atoi(count); err != nil {
				return usagef(fs, "--gpu %q: want VARIANT:COUNT, e.g. H100:8", *f.gpu)
			}
		}
		if err := req.WithGPU(variant, n); err != nil {
			return usagef(fs, "--gpu %q: %v", *f.gpu, err)
		}
	}
	if *f.groupBy != "" {
		req.Coscheduling = &jobs.Coscheduling{GroupBy: *f.groupBy}
	}
	return nil
}

// followJob prints the job's logs to stdout until it ends, with progress on
// stderr, and turns its outcome into the exit status.
func followJob(ctx context.Context, h *jobs.Handle, progress bool) error {
	start := time.Now()
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	if progress {
		go showProgress(pctx, h, start)
	}
	multi := false
	if r, err := h.Info(ctx); err == nil && len(r.Tasks) > 1 {
		multi = true
	}
	for line, err := range h.Follow(ctx) {
		if err != nil {
			return err
		}
		if multi {
			fmt.Printf("[%d] %s\n", line.Task, line.Text)
		} else {
			fmt.Println(line.Text)
		}
	}
	stop()
	r, err := h.Info(ctx)
	if err != nil {
		return err
	}
	if r.Status == jobs.StatusSucceeded {
		return nil
	}
	fmt.Fprintf(os.Stderr, "fray: job %s ended %s after %s: %s\n", r.ID, r.Status, time.Since(start).Round(time.Millisecond), r.Error)
	if tail, err := h.Logs(ctx, 20); err == nil && len(tail) > 0 {
		fmt.Fprintln(os.Stderr, "fray: last log lines:")
		for _, l := range tail {
			fmt.Fprintf(os.Stderr, "  [%d] %s\n", l.Task, l.Text)
		}
	}
	return exitError{1}
}

// jobProgressEvery is how often `fray submit --wait` says the job's state
// while nothing changes.
var jobProgressEvery = 10 * time.Second

// showProgress reports the job's state on stderr when it changes (a
// PENDING job's reason with it, so each reason is said once) and, shorter,
// every jobProgressEvery while nothing does.
func showProgress(ctx context.Context, h *jobs.Handle, start time.Time) {
	var last string
	lastAt := time.Now()
	report := func(r *jobs.Record, force bool) {
		state := fmt.Sprintf("%s, replicas %d/%d running", r.Status, r.Running(), len(r.Tasks))
		line := state
		if r.Status == jobs.StatusPending && r.PendingReason != "" {
			line += ": " + r.PendingReason
		}
		elapsed := time.Since(start).Round(time.Second)
		switch {
		case line != last && last == "" && r.Status != jobs.StatusPending && !force:
			last = line // don't announce the obvious start of a quick job
			return
		case line != last:
			fmt.Fprintf(os.Stderr, "fray: job %s %s (%s elapsed)\n", h.ID(), line, elapsed)
		case force:
			fmt.Fprintf(os.Stderr, "fray: job %s still %s (%s elapsed)\n", h.ID(), state, elapsed)
		default:
			return
		}
		last, lastAt = line, time.Now()
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r, err := h.Info(ctx)
			if err != nil || r.Status.Terminal() {
				continue
			}
			report(r, time.Since(lastAt) >= jobProgressEvery)
		}
	}
}

// pendingFor says how long a PENDING job has waited to be placed and, if
// it has one, its scheduling timeout: " (45s so far; scheduling timeout
// 5m0s)". It is empty for a job that is not PENDING.
func pendingFor(r *jobs.Record, now time.Time) string {
	if r.Status != jobs.StatusPending {
		return ""
	}
	waited := max(now.Sub(time.UnixMilli(r.PendingSinceMS())), 0).Round(time.Second)
	if to := r.Request.SchedulingTimeout; to > 0 {
		return fmt.Sprintf(" (%s so far; scheduling timeout %s)", waited, to)
	}
	return fmt.Sprintf(" (%s so far)", waited)
}

func defaultJobName(cmd string) string {
	base := filepath.Base(cmd)
	var b strings.Builder
	for _, c := range base {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteRune(c)
		}
	}
	s := b.String()
	if s == "" {
		s = "job"
	}
	return s + "-" + time.Now().UTC().Format("20060102-150405.000")
}

func parseConstraint(s string) (jobs.Constraint, error) {
	if k, v, ok := strings.Cut(s, "!="); ok {
		return jobs.Constraint{Key: k, Op: jobs.OpNE, Values: []string{v}}, nil
	}
	if k, v, ok := strings.Cut(s, "="); ok {
		if strings.Contains(v, ",") {
			return jobs.Constraint{Key: k, Op: jobs.OpIN, Values: strings.Split(v, ",")}, nil
		}
		return jobs.Constraint{Key: k, Op: jobs.OpEQ, Values: []string{v}}, nil
	}
	if s == "" {
		return jobs.Constraint{}, errors.New("--constraint is empty")
	}
	return jobs.Constraint{Key: s, Op: jobs.OpEXISTS}, nil
}

// awaitHandOff waits until an external backend has accepted the job (its
// record carries the backend's id) or the job has ended.
func awaitHandOff(ctx context.Context, h *jobs.Handle) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		r, err := h.Info(ctx)
		if err != nil {
			return err
		}
		if r.Status == jobs.StatusFailed {
			return fmt.Errorf("job %s FAILED: %s", r.ID, r.Error)
		}
		if r.ExternalID != "" || r.Status.Terminal() {
			fmt.Fprintf(os.Stderr, "fray submit: %s runs on %s as %s\n", r.ID, r.Backend, r.ExternalID)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("job %s: the backend did not accept it within 2m (%s)", r.ID, r.PendingReason)
		case <-time.After(100 * time.Millisecond): // poll the job record
		}
	}
}
