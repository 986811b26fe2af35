package jobs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JobFunc is a function a worker binary registers to serve Func
// entrypoints. It runs once per replica; what it writes to env.Log becomes
// the task's log; returning an error fails the task.
type JobFunc func(ctx context.Context, env FuncEnv) error

// FuncEnv is what a JobFunc gets about its replica.
type FuncEnv struct {
	JobID     string
	Namespace string
	Task      int
	NumTasks  int
	Attempt   int
	Arg       []byte
	Env       map[string]string
	// Devices are the worker's devices this replica holds (the entries it
	// would get in CUDA_VISIBLE_DEVICES or TPU_VISIBLE_CHIPS as a process).
	// A function shares the worker's process, so it must select them itself.
	Devices []string
	Log     io.Writer
}

// RunnerOptions configures the native job runner of a worker.
type RunnerOptions struct {
	// CPU is the cores offered to jobs. Defaults to runtime.NumCPU().
	CPU float64
	// RAM offered to jobs, e.g. "16g". Defaults to the host's total memory.
	RAM string
	// Disk offered to jobs, e.g. "100g". Defaults to 0 (not accounted).
	Disk string
	// DeviceKind ("gpu", "tpu"), DeviceVariant ("H100", "v5e-16") and
	// DeviceCount (GPUs, or TPU chips on this VM) describe the accelerator.
	// Default to none.
	DeviceKind    string
	DeviceVariant string
	DeviceCount   int
	// Devices are the ids of the worker's devices, handed out to tasks in
	// CUDA_VISIBLE_DEVICES or TPU_VISIBLE_CHIPS; the first DeviceCount are
	// used. Defaults to the entries of the worker's own
	// CUDA_VISIBLE_DEVICES (gpu) or TPU_VISIBLE_CHIPS (tpu) when that is
	// set, else "0".."DeviceCount-1".
	Devices []string
	// DeviceWait is how long a task attempt that finds too few free devices
	// (held by attempts still shutting down) waits for them before its
	// start fails. Defaults to Grace + 10 s.
	DeviceWait time.Duration
	// Funcs are the functions Func entrypoints may name.
	Funcs map[string]JobFunc
	// Secrets maps a variable name to a file whose contents (without a
	// trailing newline) the runner gives a job that names the variable in
	// EnvironmentConfig.EnvFromWorker; the file is read at each start.
	// Defaults to none: such names come from the worker's environment.
	Secrets map[string]string
	// ClusterSpec is passed to job processes as FRAY_CLUSTER_SPEC, without
	// any user and password it holds. Defaults to the URL of the worker's
	// NATS connection.
	ClusterSpec string
	// Environ is the environment job processes start from (NAME=VALUE),
	// before their devices', request's and fray's variables; the names
	// that EnvironmentConfig.EnvFromWorker asks for are looked up here
	// too. Defaults to the worker's own environment without its
	// credentials (WithoutCredentials): a job never holds what its worker
	// authenticates with. Give jobs credentials of their own by adding
	// them here (fray-worker --job-env FILE).
	Environ []string
	// Python is the interpreter of the worker's Python runtime
	// (fray-worker --python) and PythonPath its module directories. When
	// set, a callable Python job written as `python3 -m frayhq.job …` (what
	// frayhq submits when it cannot know the workers' interpreter) runs
	// with Python instead, PythonPath first on its PYTHONPATH, as the
	// worker's Python tasks do. Any other argv runs as it is.
	Python     string
	PythonPath []string
	// Grace is how long a stopped job's process group has between SIGTERM
	// and SIGKILL. Defaults to 10 s.
	Grace time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	// exitRepeat overrides exitRepeat; tests shorten it (export_test.go).
	exitRepeat time.Duration
	// outputIdle overrides outputIdle; tests shorten it (export_test.go).
	outputIdle time.Duration
}

// Runner is the native job runner: a worker plugin (it satisfies
// worker.Plugin) that starts the job replicas the dispatcher assigns to its
// worker, streams their output to FRAY_LOGS, reports their state, and kills
// their process groups when they are stopped.
type Runner struct {
	o     RunnerOptions
	log   *slog.Logger
	procs atomic.Int64 // job processes running now
}

// Processes is the number of job processes this runner runs now.
func (r *Runner) Processes() int { return int(r.procs.Load()) }

// NewRunner validates o and makes a runner.
func NewRunner(o RunnerOptions) (*Runner, error) {
	if o.CPU < 0 || o.DeviceCount < 0 {
		return nil, fmt.Errorf("%w: runner capacity is negative", ErrInvalid)
	}
	if o.CPU == 0 {
		o.CPU = float64(runtime.NumCPU())
	}
	if _, err := ParseBytes(o.RAM); err != nil {
		return nil, fmt.Errorf("runner RAM: %w", err)
	}
	if _, err := ParseBytes(o.Disk); err != nil {
		return nil, fmt.Errorf("runner disk: %w", err)
	}
	switch strings.ToLower(o.DeviceKind) {
	case "", DeviceCPU:
		o.DeviceKind = ""
	case DeviceGPU, DeviceTPU:
		o.DeviceKind = strings.ToLower(o.DeviceKind)
		if o.DeviceCount < 1 {
			return nil, fmt.Errorf("%w: runner %s device count %d: want at least 1", ErrInvalid, o.DeviceKind, o.DeviceCount)
		}
		if o.DeviceKind == DeviceTPU {
			if t, ok := LookupTPU(o.DeviceVariant); ok {
				o.DeviceVariant = t.Variant
			} else {
				return nil, fmt.Errorf("%w: runner TPU type %q unknown", ErrInvalid, o.DeviceVariant)
			}
		}
	default:
		return nil, fmt.Errorf("%w: runner device kind %q: want gpu or tpu", ErrInvalid, o.DeviceKind)
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	if o.exitRepeat <= 0 {
		o.exitRepeat = exitRepeat
	}
	if o.outputIdle <= 0 {
		o.outputIdle = outputIdle
	}
	if o.DeviceWait <= 0 {
		o.DeviceWait = o.Grace + 10*time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Environ == nil {
		o.Environ = WithoutCredentials(os.Environ())
	}
	r := &Runner{o: o, log: o.Logger.With("component", "job-runner")}
	if o.DeviceKind != "" {
		ids, err := workerDevices(o.DeviceKind, o.DeviceCount, o.Devices)
		if err != nil {
			return nil, err
		}
		r.o.Devices = ids
	} else {
		r.o.Devices = nil
	}
	return r, nil
}

// Describe puts the runner's capacity into the worker's record.
func (r *Runner) Describe(info *broker.WorkerInfo) {
	ram, _ := ParseBytes(r.o.RAM)
	if ram == 0 {
		ram = HostMemory()
	}
	disk, _ := ParseBytes(r.o.Disk)
	info.Resources = broker.WorkerResources{
		CPU: r.o.CPU, RAMBytes: ram, DiskBytes: disk,
		DeviceKind: r.o.DeviceKind, DeviceVariant: r.o.DeviceVariant, DeviceCount: r.o.DeviceCount,
	}
	if r.o.DeviceVariant != "" {
		if info.Attributes == nil {
			info.Attributes = map[string]string{}
		}
		if _, ok := info.Attributes[AttrDeviceVariant]; !ok {
			info.Attributes[AttrDeviceVariant] = r.o.DeviceVariant
		}
	}
}

// HostMemory is the host's total memory in bytes (0 if unknown): what a
// runner offers by default.
func HostMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 && fs[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fs[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// Run serves the worker's assignments until ctx ends, then stops every
// running replica (reported as preempted, so the job reruns elsewhere
// without spending its failure budget) and returns nil.
func (r *Runner) Run(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, self *broker.WorkerInfo) error {
	var kv jetstream.KeyValue
	if err := broker.Retry(ctx, r.log, "open "+broker.BucketJobState, func(sctx context.Context) (err error) {
		kv, err = broker.KeyValue(sctx, js, broker.BucketJobState)
		return err
	}); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("jobs runner: open %s: %w", broker.BucketJobState, err)
	}
	spec := r.o.ClusterSpec
	if spec == "" {
		spec = nc.ConnectedUrl()
	}
	spec = WithoutUserinfo(spec)
	key := jobwire.AllocKey(self.ID)
	// The worker's allocation changes only when the dispatcher places or
	// stops something here: a core subscription to its key's subject says
	// when (no consumer per worker on the bucket), and a direct get reads
	// it. A read after each reconnect, and every few seconds, catches a
	// change the subscription missed (published while this connection was
	// away).
	changed := make(chan struct{}, 1)
	sub, err := nc.Subscribe("$KV."+broker.BucketJobState+"."+key, func(*nats.Msg) {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return fmt.Errorf("jobs runner: subscribe to assignments: %w", broker.ExplainLimit(err))
	}
	defer func() { _ = sub.Unsubscribe() }()
	host := &host{r: r, js: js, worker: self.ID, spec: spec, running: map[string]*proc{}, finished: map[string]*exitReport{}}
	if r.o.DeviceKind != "" {
		host.devs = newDevicePool(r.o.DeviceKind, r.o.Devices)
	}
	var lastRev uint64
	gone := false // the key was found deleted, and that was applied
	// read applies the key's current allocation; it reports false when it
	// found nothing newer than what was applied, or could not read.
	read := func() bool {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		e, err := kv.Get(gctx, key)
		cancel()
		var a jobwire.Allocation
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
			if lastRev == 0 || gone {
				return false // never assigned anything, or already applied
			}
			gone = true
			// Deleted: nothing is assigned here any more. The revision of
			// the deletion is unknown; the next put has a higher one.
		case err != nil:
			return false // try again
		case e.Revision() <= lastRev:
			return false
		default:
			lastRev, gone = e.Revision(), false
			if err := objects.Unmarshal(e.Value(), &a); err != nil {
				r.log.Error("bad allocation record", "key", key, "err", err)
				return true
			}
		}
		host.apply(ctx, a.Tasks)
		return true
	}
	read()
	// A change is heard on the key's subject as the stream stores it, so
	// the read that follows can still find the revision before it (or fail
	// under load): it is read again after 10 ms, doubling up to 500 ms,
	// until a newer revision shows or 2 s have passed (then the periodic
	// read takes over).
	again := time.NewTimer(time.Hour)
	again.Stop()
	defer again.Stop()
	var againC <-chan time.Time
	var againDelay time.Duration
	var againUntil time.Time
	settle := func(advanced, first bool) {
		againC = nil
		if advanced {
			return
		}
		if first {
			againDelay, againUntil = 10*time.Millisecond, time.Now().Add(2*time.Second)
		} else {
			againDelay = min(2*againDelay, 500*time.Millisecond)
		}
		if time.Now().Before(againUntil) {
			again.Reset(againDelay)
			againC = again.C
		}
	}
	// Exits not yet acknowledged are sent again once exitRepeat old
	// (looked at every second, or more often for a shorter exitRepeat); the
	// key is read again after a reconnect and every resyncEvery as a safety
	// net.
	tick := time.NewTicker(min(time.Second, max(r.o.exitRepeat/2, 10*time.Millisecond)))
	defer tick.Stop()
	const resyncEvery = 5 * time.Second
	reconnects, lastRead := nc.Stats().Reconnects, time.Now()
	for {
		select {
		case <-ctx.Done():
			host.stopAll()
			return nil
		case now := <-tick.C:
			host.repeatExits()
			if r := nc.Stats().Reconnects; r != reconnects || now.Sub(lastRead) >= resyncEvery {
				reconnects, lastRead = r, now
				read()
			}
		case <-changed:
			settle(read(), true)
		case <-againC:
			settle(read(), false)
		}
	}
}

// host is the runner's state while it runs.
type host struct {
	r      *Runner
	js     jetstream.JetStream
	worker string
	spec   string
	devs   *devicePool // nil on a worker without devices

	mu       sync.Mutex
	running  map[string]*proc
	finished map[string]*exitReport // attempts that ended but may still be listed
	listed   map[string]bool        // the assignments in the latest allocation
	wg       sync.WaitGroup
}

func assignKey(a *jobwire.Assignment) string {
	return a.Job + "|" + a.Run + "|" + strconv.Itoa(a.Task) + "|" + strconv.Itoa(a.Attempt)
}

// apply starts the listed assignments not yet started and stops the
// running ones no longer listed.
func (h *host) apply(ctx context.Context, tasks []jobwire.Assignment) {
	h.mu.Lock()
	defer h.mu.Unlock()
	want := map[string]bool{}
	for i := range tasks {
		a := tasks[i]
		k := assignKey(&a)
		want[k] = true
		if h.running[k] != nil || h.finished[k] != nil {
			continue
		}
		p := &proc{h: h, a: a, stop: make(chan bool, 1), done: make(chan struct{})}
		h.running[k] = p
		h.wg.Add(1)
		h.r.procs.Add(1)
		go func() {
			defer h.wg.Done()
			ev := p.run(context.WithoutCancel(ctx))
			h.r.procs.Add(-1)
			h.mu.Lock()
			delete(h.running, k)
			if h.listed[k] { // still assigned: remember, to repeat the report if unanswered
				h.finished[k] = &exitReport{ev: ev, at: time.Now()}
			}
			h.mu.Unlock()
		}()
	}
	h.listed = want
	for k, p := range h.running {
		if !want[k] {
			p.requestStop(false)
		}
	}
	for k := range h.finished {
		if !want[k] {
			delete(h.finished, k)
		}
	}
}

// exitReport is a reported exit, kept while the assignment is still listed.
type exitReport struct {
	ev jobwire.TaskEvent
	at time.Time
}

// exitRepeat is how long an exit report may go unanswered (its assignment
// still listed) before the runner sends it again, in case it was lost (the
// default of RunnerOptions.exitRepeat).
const exitRepeat = 5 * time.Second

// outputIdle is how long in all, once a replica has exited, the reads of
// its output pipe wait for data before the runner takes the pipe for held
// open by a process that left the replica's group (the default of
// RunnerOptions.outputIdle).
const outputIdle = 5 * time.Second

// repeatExits re-sends exit reports the dispatcher has not acted on.
func (h *host) repeatExits() {
	h.mu.Lock()
	var due []jobwire.TaskEvent
	for _, x := range h.finished {
		if time.Since(x.at) >= h.r.o.exitRepeat {
			x.at = time.Now()
			due = append(due, x.ev)
		}
	}
	h.mu.Unlock()
	for _, ev := range due {
		b, err := objects.Marshal(&ev)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _ = h.js.Publish(ctx, jobwire.EventSubject(h.worker, ev.Job), b)
		cancel()
	}
}

// stopAll stops every replica as preempted and waits for them.
func (h *host) stopAll() {
	h.mu.Lock()
	for _, p := range h.running {
		p.requestStop(true)
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// publishEvent reports a task event, retrying while the broker restarts.
func (h *host) publishEvent(ev jobwire.TaskEvent) jobwire.TaskEvent {
	ev.V = jobwire.WireVersion
	ev.Worker = h.worker
	if ev.TimeMS == 0 {
		ev.TimeMS = jobwire.NowMS()
	}
	b, err := objects.Marshal(&ev)
	if err != nil {
		return ev
	}
	// Retry for about half a minute; an exit report still unanswered after
	// that is repeated by repeatExits.
	for try := 0; try < 10; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = h.js.Publish(ctx, jobwire.EventSubject(h.worker, ev.Job), b)
		cancel()
		if err == nil {
			return ev
		}
		time.Sleep(time.Duration(min(try+1, 10)) * 100 * time.Millisecond)
	}
	h.r.log.Error("cannot report task event", "job", ev.Job, "task", ev.Task, "kind", ev.Kind, "err", err)
	return ev
}
