package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/cluster"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/tasks"
	"github.com/frayhq/fray/worker"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// FleetOptions configures Fleet.
type FleetOptions struct {
	// URL is the broker's client URL; Monitor its nats-server monitoring
	// URL (http://host:port), read for CPU, RSS and message counts.
	URL, Monitor string
	Workers      int           // simulated workers, each wired as fray-worker
	Concurrency  int           // task slots per worker
	LeaseTTL     time.Duration // worker lease TTL (fray-worker's default 6 s)
	Idle         time.Duration // the idle measurement window
	Serial       int           // no-op tasks run one at a time on the idle fleet
	Tasks        int           // no-op tasks submitted at once in the burst phase
	Jobs         int           // jobs submitted one at a time in the job phase
	JobCommand   []string      // the job's command (e.g. /bin/true)
	// Progress receives a line on each phase's start and while waiting.
	Progress func(string)
}

// FleetResult is the outcome of one Fleet run.
type FleetResult struct {
	Workers int `json:"workers"`
	// RegisterS is from starting every worker at once until the pool
	// directory counts them all; Exited counts workers whose Run returned
	// an error (none should).
	RegisterS float64 `json:"register_s"`
	Exited    int     `json:"workers_exited"`
	// Idle broker figures over IdleS: CPU in % of one core, RSS, and the
	// messages and bytes it received and sent per second.
	IdleS         float64 `json:"idle_s"`
	IdleCPUPct    float64 `json:"idle_broker_cpu_pct"`
	BrokerRSSMiB  float64 `json:"broker_rss_mib"`
	IdleInMsgsPS  float64 `json:"idle_in_msgs_per_s"`
	IdleOutMsgsPS float64 `json:"idle_out_msgs_per_s"`
	IdleInKBPS    float64 `json:"idle_in_kib_per_s"`
	IdleOutKBPS   float64 `json:"idle_out_kib_per_s"`
	// SchedP99MS is this process's goroutine scheduling latency p99
	// over the idle window (the Go runtime's /sched/latencies): how late
	// the simulated workers' renewals could run because this one process
	// is starved, not because of fray or the broker.
	SchedP99MS float64 `json:"idle_sched_p99_ms"`
	SchedMaxMS float64 `json:"idle_sched_max_ms"`
	// SimCPUPct is this process's CPU over the idle window, in % of one
	// core: what simulating every worker in one process costs.
	SimCPUPct float64 `json:"idle_sim_cpu_pct"`
	// Run-queue waits over the idle window, in % of the window: the time
	// the threads of this process and of the broker (when it is a child
	// process) spent runnable but waiting for a CPU, summed over threads.
	// High values mean the machine, not fray, held them back.
	SimRunQueueWaitPct    float64 `json:"idle_sim_runq_wait_pct"`
	BrokerRunQueueWaitPct float64 `json:"idle_broker_runq_wait_pct"`
	// Serial tasks, one at a time on the idle fleet: the latency a user
	// submitting a task feels.
	Serial      int     `json:"serial_tasks"`
	SerialP50MS float64 `json:"serial_task_p50_ms"`
	SerialP99MS float64 `json:"serial_task_p99_ms"`
	// Burst: Tasks no-op tasks submitted at once. Its latencies are mostly
	// queueing (the time to drain the burst), so its throughput is the
	// number that tells.
	Tasks         int     `json:"burst_tasks"`
	TasksPerS     float64 `json:"burst_tasks_per_s"`
	TaskP50MS     float64 `json:"burst_task_p50_ms"`
	TaskP99MS     float64 `json:"burst_task_p99_ms"`
	Jobs          int     `json:"jobs"`
	JobStartP50MS float64 `json:"job_start_p50_ms"`
	JobStartP99MS float64 `json:"job_start_p99_ms"`
	// LeasesLost counts worker lease keys that expired (a liveness decider
	// saw the expiry) from the first start to the end of the run;
	// LeasesLostIdle those in the idle window (after the start-up storm).
	LeasesLost     int `json:"leases_lost"`
	LeasesLostIdle int `json:"leases_lost_idle"`
	// WorkersLost counts expired leases not taken back within
	// broker.ExpiryGrace: the workers the dispatcher declared lost.
	WorkersLost int `json:"workers_lost"`
	// RenewGapMaxMS is the longest time between two stored renewals of
	// one lease in the idle window (by the broker's clock), RenewsLate
	// how many of those gaps exceeded two thirds of the TTL (a renewal
	// more than one period late).
	RenewGapMaxMS float64 `json:"idle_renew_gap_max_ms"`
	RenewsLate    int     `json:"idle_renews_late"`
}

func (r FleetResult) String() string {
	return fmt.Sprintf("fleet: %d workers registered in %.1f s (%d exited)\n"+
		"idle %.0f s: broker CPU %.1f%% of one core, RSS %.0f MiB, in %.0f msgs/s (%.0f KiB/s), out %.0f msgs/s (%.0f KiB/s)\n"+
		"this process (the simulated workers) while idle: CPU %.1f%% of one core, goroutine scheduling latency p99 %.2f ms, max %.0f ms\n"+
		"run-queue waits while idle (threads runnable, no CPU free), %% of the window: this process %.1f, broker %.1f\n"+
		"tasks one at a time: %d, latency p50 %.2f ms, p99 %.2f ms\n"+
		"burst of %d no-op tasks at once: %.0f tasks/s, latency p50 %.2f ms, p99 %.2f ms\n"+
		"jobs: %d one at a time: submit-to-RUNNING p50 %.1f ms, p99 %.1f ms\n"+
		"leases expired: %d (%d while idle), not taken back within the grace (workers lost): %d; idle renewals: longest gap %.0f ms, %d more than a period late",
		r.Workers, r.RegisterS, r.Exited, r.IdleS, r.IdleCPUPct, r.BrokerRSSMiB, r.IdleInMsgsPS, r.IdleInKBPS, r.IdleOutMsgsPS, r.IdleOutKBPS,
		r.SimCPUPct, r.SchedP99MS, r.SchedMaxMS, r.SimRunQueueWaitPct, r.BrokerRunQueueWaitPct, r.Serial, r.SerialP50MS, r.SerialP99MS, r.Tasks, r.TasksPerS, r.TaskP50MS, r.TaskP99MS, r.Jobs, r.JobStartP50MS, r.JobStartP99MS, r.LeasesLost, r.LeasesLostIdle, r.WorkersLost, r.RenewGapMaxMS, r.RenewsLate)
}

// Fleet starts o.Workers workers in this process, each as fray-worker
// wires itself (its own fray client and NATS connection, the actor host
// and job runner plugins), all at once, against the broker at o.URL; then
// measures the idle broker, a burst of tasks and a series of jobs.
func Fleet(ctx context.Context, o FleetOptions) (FleetResult, error) {
	res := FleetResult{Workers: o.Workers, Serial: o.Serial, Tasks: o.Tasks, Jobs: o.Jobs}
	say := o.Progress
	if say == nil {
		say = func(string) {}
	}
	nc, err := nats.Connect(o.URL, nats.MaxReconnects(-1))
	if err != nil {
		return res, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	leases, stopWatch, err := watchLeases(ctx, js)
	if err != nil {
		return res, err
	}
	defer stopWatch()

	// Every worker starts at once, as a fleet does when its hosts boot.
	wctx, stopWorkers := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var exited atomic.Int32
	var mu sync.Mutex
	var firstErr error
	defer func() {
		stopWorkers()
		wg.Wait()
	}()
	log := slog.New(slog.DiscardHandler)
	t0 := time.Now()
	for i := range o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := runFleetWorker(wctx, o, i, log); err != nil && wctx.Err() == nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
					say(fmt.Sprintf("a worker exited: %v", err))
				}
				mu.Unlock()
				exited.Add(1)
			}
		}()
	}
	say(fmt.Sprintf("starting %d workers", o.Workers))
	if err := waitDirectory(ctx, js, o.Workers, say, &exited); err != nil {
		return res, err
	}
	res.RegisterS = time.Since(t0).Seconds()
	say(fmt.Sprintf("%d workers registered in %.1f s; idle for %s", o.Workers, res.RegisterS, o.Idle))

	// Idle: let start-up traffic settle for a lease period, then measure.
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(o.LeaseTTL):
	}
	v0, err := varz(ctx, o.Monitor)
	if err != nil {
		return res, err
	}
	i0, lost0, sched0, self0 := time.Now(), leases.expired(), schedLatencies(), selfCPU()
	leases.resetGaps()
	simWait0, _ := ProcRunQueueWait(os.Getpid())
	var brokerWait0 time.Duration
	if BrokerPID != 0 {
		brokerWait0, _ = ProcRunQueueWait(BrokerPID)
	}
	var rss float64
	for time.Since(i0) < o.Idle {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(time.Second):
		}
		if v, err := varz(ctx, o.Monitor); err == nil {
			rss = max(rss, float64(v.Mem)/(1<<20))
		}
	}
	v1, err := varz(ctx, o.Monitor)
	if err != nil {
		return res, err
	}
	el := time.Since(i0).Seconds()
	res.IdleS = el
	res.SimCPUPct = 100 * (selfCPU() - self0).Seconds() / el
	if w, ok := ProcRunQueueWait(os.Getpid()); ok {
		res.SimRunQueueWaitPct = 100 * (w - simWait0).Seconds() / el
	}
	if BrokerPID != 0 {
		if w, ok := ProcRunQueueWait(BrokerPID); ok {
			res.BrokerRunQueueWaitPct = 100 * (w - brokerWait0).Seconds() / el
		}
	}
	sched := schedLatencies().since(sched0)
	res.SchedP99MS, res.SchedMaxMS = ms(sched.quantile(0.99)), ms(sched.quantile(1))
	res.LeasesLostIdle = leases.expired() - lost0
	gap, late := leases.gaps(o.LeaseTTL)
	res.RenewGapMaxMS, res.RenewsLate = ms(gap), late
	res.BrokerRSSMiB = max(rss, float64(v1.Mem)/(1<<20))
	res.IdleInMsgsPS = float64(v1.InMsgs-v0.InMsgs) / el
	res.IdleOutMsgsPS = float64(v1.OutMsgs-v0.OutMsgs) / el
	res.IdleInKBPS = float64(v1.InBytes-v0.InBytes) / el / 1024
	res.IdleOutKBPS = float64(v1.OutBytes-v0.OutBytes) / el / 1024
	if cpu, ok := brokerCPU(v0, v1); ok {
		res.IdleCPUPct = cpu
	} else {
		res.IdleCPUPct = v1.CPU
	}

	// Tasks and jobs from a client of their own.
	c, err := fray.Connect(ctx, o.URL, fray.WithoutEnvCredentials())
	if err != nil {
		return res, err
	}
	defer c.Close()
	if o.Serial > 0 {
		say(fmt.Sprintf("running %d tasks one at a time", o.Serial))
		if err := fleetSerial(ctx, c, o.Serial, &res); err != nil {
			return res, err
		}
	}
	if o.Tasks > 0 {
		say(fmt.Sprintf("running %d tasks at once", o.Tasks))
		if err := fleetTasks(ctx, c, o.Tasks, &res); err != nil {
			return res, err
		}
	}
	if o.Jobs > 0 {
		say(fmt.Sprintf("running %d jobs", o.Jobs))
		if err := fleetJobs(ctx, c, o, &res); err != nil {
			return res, err
		}
	}
	res.Exited = int(exited.Load())
	res.LeasesLost, res.WorkersLost = leases.expired(), leases.lost()
	return res, nil
}

// runFleetWorker is one simulated fray-worker.
func runFleetWorker(ctx context.Context, o FleetOptions, i int, log *slog.Logger) error {
	var c *fray.Client
	// fray-worker connects once; a refused start is its own failure. The
	// client's set-up steps are retried here as a supervisor restarting
	// fray-worker would, so a storm shows up as time, not as exits.
	err := broker.Retry(ctx, log, "connect", func(ctx context.Context) (err error) {
		c, err = fray.Connect(ctx, o.URL, fray.WithoutEnvCredentials(), fray.WithLogger(log))
		return err
	})
	if err != nil {
		return err
	}
	defer c.Close()
	plugins, err := cluster.Plugins(cluster.PluginOptions{NATSURL: o.URL, Logger: log})
	if err != nil {
		return err
	}
	w, err := worker.New(c.NATS(), worker.Options{
		ID: fmt.Sprintf("fleet-%05d", i), Concurrency: o.Concurrency, Prefetch: worker.DefaultPrefetch(o.Concurrency), LeaseTTL: o.LeaseTTL, Plugins: plugins,
		DrainTimeout: time.Nanosecond, Logger: log,
		HandlerContext: func(ctx context.Context) context.Context { return fray.WithClient(ctx, c) },
		Objects:        c.Objects(),
	})
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// waitDirectory waits until the default pool's directory counts n workers.
func waitDirectory(ctx context.Context, js jetstream.JetStream, n int, say func(string), exited *atomic.Int32) error {
	kv, err := js.KeyValue(ctx, broker.BucketPools)
	if err != nil {
		return err
	}
	last := time.Now()
	for {
		var d broker.PoolDirectory
		if e, err := kv.Get(ctx, tasks.DefaultPool); err == nil {
			_ = objects.Unmarshal(e.Value(), &d)
		}
		if d.Workers >= n {
			return nil
		}
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			say(fmt.Sprintf("%d of %d workers registered (%d exited)", d.Workers, n, exited.Load()))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func fleetTasks(ctx context.Context, c *fray.Client, n int, res *FleetResult) error {
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	t0 := time.Now()
	for i := range n {
		s := time.Now()
		f := c.Run(ctx, "fray.noop", nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.Get(ctx, nil); err != nil {
				errs <- err
				return
			}
			lat[i] = time.Since(s)
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("task: %w", err)
	}
	slices.Sort(lat)
	res.TasksPerS = float64(n) / el.Seconds()
	res.TaskP50MS, res.TaskP99MS = ms(lat[n/2]), ms(lat[min(n-1, n*99/100)])
	return nil
}

func fleetSerial(ctx context.Context, c *fray.Client, n int, res *FleetResult) error {
	lat := make([]time.Duration, n)
	for i := range n {
		s := time.Now()
		if err := c.Run(ctx, "fray.noop", nil).Get(ctx, nil); err != nil {
			return fmt.Errorf("task: %w", err)
		}
		lat[i] = time.Since(s)
	}
	slices.Sort(lat)
	res.SerialP50MS, res.SerialP99MS = ms(lat[n/2]), ms(lat[min(n-1, n*99/100)])
	return nil
}

func fleetJobs(ctx context.Context, c *fray.Client, o FleetOptions, res *FleetResult) error {
	var starts []time.Duration
	for i := range o.Jobs {
		req := jobs.JobRequest{Name: fmt.Sprintf("fleet-%d-%d", time.Now().UnixNano(), i), Entrypoint: jobs.Command(o.JobCommand...)}
		t0 := time.Now()
		var running time.Duration
		h, err := c.Submit(ctx, req)
		if err != nil {
			return err
		}
		if _, err := h.Wait(ctx, jobs.WaitOptions{RaiseOnFailure: true, Progress: func(r *jobs.Record) {
			if running == 0 && (r.Status == jobs.StatusRunning || r.Status.Terminal()) {
				running = time.Since(t0)
			}
		}}); err != nil {
			return err
		}
		starts = append(starts, running)
	}
	slices.Sort(starts)
	res.JobStartP50MS, res.JobStartP99MS = ms(starts[len(starts)/2]), ms(starts[min(len(starts)-1, len(starts)*99/100)])
	return nil
}

// varzInfo is what Fleet reads of nats-server's /varz.
type varzInfo struct {
	CPU      float64 `json:"cpu"`
	Mem      int64   `json:"mem"`
	InMsgs   int64   `json:"in_msgs"`
	OutMsgs  int64   `json:"out_msgs"`
	InBytes  int64   `json:"in_bytes"`
	OutBytes int64   `json:"out_bytes"`
	// cpuTime is the broker process's user+system CPU, when known (a
	// child process of this one); at is when varz was read.
	cpuTime time.Duration
	at      time.Time
}

// BrokerPID, when set, is the broker's process id on this machine, for
// its run-queue waits.
var BrokerPID int

// BrokerCPUTime, when set, reads the broker process's CPU time (user +
// system); Fleet then reports idle CPU from it instead of varz's sample.
var BrokerCPUTime func() (time.Duration, bool)

func varz(ctx context.Context, monitor string) (varzInfo, error) {
	var v varzInfo
	if monitor == "" {
		return v, errors.New("bench fleet: no monitoring URL for the broker")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(monitor, "/")+"/varz", nil)
	if err != nil {
		return v, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return v, fmt.Errorf("bench fleet: read %s/varz: %w", monitor, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("bench fleet: %s/varz: %w", monitor, err)
	}
	v.at = time.Now()
	if BrokerCPUTime != nil {
		if d, ok := BrokerCPUTime(); ok {
			v.cpuTime = d
		}
	}
	return v, nil
}

// brokerCPU is the broker's CPU between two readings in % of one core,
// when its CPU time is known.
func brokerCPU(a, b varzInfo) (float64, bool) {
	if b.cpuTime == 0 || !b.at.After(a.at) {
		return 0, false
	}
	return 100 * (b.cpuTime - a.cpuTime).Seconds() / b.at.Sub(a.at).Seconds(), true
}
