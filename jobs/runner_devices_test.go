package jobs_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// runnerRig is a job runner on an in-process broker, fed allocations by the
// test instead of a dispatcher; it collects the runner's task events and
// the output lines of every job.
type runnerRig struct {
	t      *testing.T
	ctx    context.Context
	js     jetstream.JetStream // the runner's, unwrapped
	kv     jetstream.KeyValue
	worker string
	logs   *frayt.SyncBuffer // the runner's slog output

	mu     sync.Mutex
	events []jobwire.TaskEvent
	lines  map[string][]string // job id → output lines
}

func startRunner(t *testing.T, o jobs.RunnerOptions) *runnerRig {
	t.Helper()
	return startRunnerWith(t, o, nil)
}

// startRunnerWith starts a runner whose JetStream is wrap(js) when wrap is
// set (a test holds back or inspects its publishes).
func startRunnerWith(t *testing.T, o jobs.RunnerOptions, wrap func(jetstream.JetStream) jetstream.JetStream) *runnerRig {
	t.Helper()
	rig := &runnerRig{t: t, ctx: frayt.Context(t, time.Minute), worker: "w1", logs: &frayt.SyncBuffer{}, lines: map[string][]string{}}
	nc, js := frayt.Connect(t, frayt.Server(t).ClientURL())
	rig.js = js
	var err error
	if rig.kv, err = js.KeyValue(rig.ctx, broker.BucketJobState); err != nil {
		t.Fatal(err)
	}
	sub, err := nc.Subscribe(broker.SubjectLogsPrefix+">", func(m *nats.Msg) {
		var b jobwire.LogBatch
		if objects.Unmarshal(m.Data, &b) == nil {
			rig.mu.Lock()
			rig.lines[b.Job] = append(rig.lines[b.Job], b.Lines...)
			rig.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	esub, err := nc.Subscribe(jobwire.SubjectEventsPrefix+">", func(m *nats.Msg) {
		var ev jobwire.TaskEvent
		if objects.Unmarshal(m.Data, &ev) == nil {
			rig.mu.Lock()
			rig.events = append(rig.events, ev)
			rig.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = esub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if o.Grace == 0 {
		o.Grace = 2 * time.Second
	}
	o.Logger = slog.New(slog.NewTextHandler(rig.logs, nil))
	r, err := jobs.NewRunner(o)
	if err != nil {
		t.Fatal(err)
	}
	info := broker.WorkerInfo{V: broker.WorkerInfoVersion, ID: rig.worker, Host: "test", StartedMS: jobwire.NowMS()}
	r.Describe(&info)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	rjs := js
	if wrap != nil {
		rjs = wrap(js)
	}
	go func() {
		defer close(done)
		if err := r.Run(ctx, nc, rjs, &info); err != nil {
			t.Errorf("runner: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return rig
}

// assign makes as the worker's whole allocation.
func (r *runnerRig) assign(as ...jobwire.Assignment) {
	r.t.Helper()
	b, err := objects.Marshal(&jobwire.Allocation{V: jobwire.WireVersion, Worker: r.worker, Tasks: as})
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.kv.Put(r.ctx, jobwire.AllocKey(r.worker), b); err != nil {
		r.t.Fatal(err)
	}
}

// event is the job's first event of kind, or nil.
func (r *runnerRig) event(job, kind string) *jobwire.TaskEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		if ev.Job == job && ev.Kind == kind {
			return &ev
		}
	}
	return nil
}

// output waits for the job's first output line.
func (r *runnerRig) output(job string) string {
	r.t.Helper()
	var line string
	frayt.Eventually(r.t, 10*time.Second, job+" printed", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		if l := r.lines[job]; len(l) > 0 {
			line = l[0]
			return true
		}
		return false
	})
	return line
}

// waitEvent waits for the job's first event of kind.
func (r *runnerRig) waitEvent(job, kind string) *jobwire.TaskEvent {
	r.t.Helper()
	var ev *jobwire.TaskEvent
	frayt.Eventually(r.t, 30*time.Second, job+" "+kind, func() bool { ev = r.event(job, kind); return ev != nil })
	return ev
}

// waitWaiting waits until the runner logs that job waits for devices.
func (r *runnerRig) waitWaiting(job string) {
	r.t.Helper()
	frayt.Eventually(r.t, 10*time.Second, job+" waits for devices", func() bool {
		for _, l := range strings.Split(r.logs.String(), "\n") {
			if strings.Contains(l, `msg="task waits for devices"`) && strings.Contains(l, "job="+job+" ") {
				return true
			}
		}
		return false
	})
}

// gpuTask is a one-replica command task of job id claiming devices.
func gpuTask(id string, devices int, script string) jobwire.Assignment {
	return jobwire.Assignment{
		Job: id, Run: "run-" + id, Namespace: "t", Task: 0, NumTasks: 1, CPU: 1, Devices: devices,
		Argv: []string{"sh", "-c", script}, CreatedMS: jobwire.NowMS(),
	}
}

// printVisible prints the task's CUDA_VISIBLE_DEVICES, then idles.
const printVisible = `echo "cuda=[$CUDA_VISIBLE_DEVICES] set=${CUDA_VISIBLE_DEVICES+yes}"; exec sleep 600`

// noVisibilityEnv makes the worker process start without the device
// variables, as on a host where nobody restricted it.
func noVisibilityEnv(t *testing.T) {
	for _, k := range []string{jobs.EnvCUDAVisibleDevices, jobs.EnvTPUVisibleChips, jobs.EnvTPUChipsPerHostBounds, jobs.EnvTPUHostBounds} {
		t.Setenv(k, "") // restored when the test ends
		os.Unsetenv(k)
	}
}

func gpuRunner(n int) jobs.RunnerOptions {
	return jobs.RunnerOptions{CPU: 8, DeviceKind: "gpu", DeviceVariant: "H100", DeviceCount: n}
}

func TestTwoGPUTasksOnATwoGPURunnerGetDistinctDevicesAndAThirdWaitsForAFreedOne(t *testing.T) {
	noVisibilityEnv(t)
	rig := startRunner(t, gpuRunner(2))
	a, b, c := gpuTask("/t/a", 1, printVisible), gpuTask("/t/b", 1, printVisible), gpuTask("/t/c", 1, printVisible)
	rig.assign(a, b)
	outs := []string{rig.output("/t/a"), rig.output("/t/b")}
	slices.Sort(outs)
	if want := []string{"cuda=[0] set=yes", "cuda=[1] set=yes"}; !slices.Equal(outs, want) {
		t.Fatalf("outputs %q, want %q", outs, want)
	}
	aDevs := rig.waitEvent("/t/a", jobwire.EventStarted).Devices
	if len(aDevs) != 1 || "cuda=["+aDevs[0]+"] set=yes" != rig.output("/t/a") {
		t.Fatalf("started event of a reports devices %q, its process printed %q", aDevs, rig.output("/t/a"))
	}

	// A third 1-GPU task finds both GPUs held: it waits, unstarted.
	rig.assign(a, b, c)
	rig.waitWaiting("/t/c")
	if ev := rig.event("/t/c", jobwire.EventStarted); ev != nil {
		t.Fatalf("c started while both GPUs were held: %+v", ev)
	}
	// a stops: c gets a's GPU, once a's process is gone.
	rig.assign(b, c)
	if got, want := rig.output("/t/c"), rig.output("/t/a"); got != want {
		t.Fatalf("c printed %q, want a's device: %q", got, want)
	}
	rig.waitEvent("/t/a", jobwire.EventExited)
	if ev := rig.waitEvent("/t/c", jobwire.EventStarted); !slices.Equal(ev.Devices, aDevs) {
		t.Fatalf("c's started event reports devices %q, want %q", ev.Devices, aDevs)
	}
	rig.assign()
	rig.waitEvent("/t/b", jobwire.EventExited)
	rig.waitEvent("/t/c", jobwire.EventExited)
}

func TestTaskStoppedWhileWaitingForDevicesExitsWithoutStarting(t *testing.T) {
	noVisibilityEnv(t)
	rig := startRunner(t, gpuRunner(1))
	a, b := gpuTask("/t/a", 1, printVisible), gpuTask("/t/b", 1, printVisible)
	rig.assign(a)
	rig.output("/t/a")
	rig.assign(a, b)
	rig.waitWaiting("/t/b")
	rig.assign(a)
	if ev := rig.waitEvent("/t/b", jobwire.EventExited); ev.Error != "stopped" || ev.DevicesBusy || ev.Preempted {
		t.Fatalf("exit of b: %+v", ev)
	}
	if rig.event("/t/b", jobwire.EventStarted) != nil || rig.event("/t/a", jobwire.EventExited) != nil {
		t.Fatal("b started, or a was disturbed")
	}
	rig.assign()
	rig.waitEvent("/t/a", jobwire.EventExited)
}

func TestTaskWhoseDevicesStayBusyFailsToStartNamingThem(t *testing.T) {
	noVisibilityEnv(t)
	o := gpuRunner(2)
	o.DeviceWait = 200 * time.Millisecond
	rig := startRunner(t, o)
	a, b := gpuTask("/t/a", 1, printVisible), gpuTask("/t/b", 1, printVisible)
	c := gpuTask("/t/c", 2, printVisible) // the dispatcher overbooked the worker
	rig.assign(a, b)
	rig.output("/t/a")
	rig.output("/t/b")
	rig.assign(a, b, c)
	ev := rig.waitEvent("/t/c", jobwire.EventExited)
	if !ev.DevicesBusy || ev.ExitCode != -1 || ev.Preempted {
		t.Fatalf("exit of c: %+v, want devices_busy with exit code -1", ev)
	}
	for _, want := range []string{"devices busy", "needs 2 gpu", "0 of 2 free", "gpu 0 held by job /t/", "gpu 1 held by job /t/"} {
		if !strings.Contains(ev.Error, want) {
			t.Fatalf("error %q does not say %q", ev.Error, want)
		}
	}
	if rig.event("/t/c", jobwire.EventStarted) != nil {
		t.Fatal("c reported started")
	}
	if line := rig.output("/t/c"); !strings.HasPrefix(line, "fray: cannot start: devices busy") {
		t.Fatalf("c's log: %q", line)
	}
	rig.assign()
	rig.waitEvent("/t/a", jobwire.EventExited)
	rig.waitEvent("/t/b", jobwire.EventExited)
}

func TestRunnerRestrictedByCUDAVisibleDevicesHandsOutThoseEntries(t *testing.T) {
	noVisibilityEnv(t)
	t.Setenv(jobs.EnvCUDAVisibleDevices, "2,3")
	rig := startRunner(t, gpuRunner(2))
	rig.assign(gpuTask("/t/a", 1, printVisible), gpuTask("/t/b", 1, printVisible))
	outs := []string{rig.output("/t/a"), rig.output("/t/b")}
	slices.Sort(outs)
	if want := []string{"cuda=[2] set=yes", "cuda=[3] set=yes"}; !slices.Equal(outs, want) {
		t.Fatalf("outputs %q, want %q", outs, want)
	}
	rig.assign(gpuTask("/t/both", 2, printVisible))
	if got := rig.output("/t/both"); got != "cuda=[2,3] set=yes" {
		t.Fatalf("2-GPU task printed %q", got)
	}
	rig.assign()
	rig.waitEvent("/t/both", jobwire.EventExited)
}

func TestRunnerRefusesMoreDevicesThanItsVisibleList(t *testing.T) {
	noVisibilityEnv(t)
	t.Setenv(jobs.EnvCUDAVisibleDevices, "5")
	if _, err := jobs.NewRunner(gpuRunner(2)); err == nil || !strings.Contains(err.Error(), "CUDA_VISIBLE_DEVICES") {
		t.Fatalf("NewRunner with 2 GPUs but CUDA_VISIBLE_DEVICES=5: %v", err)
	}
}

func TestTaskWithoutDevicesOnAGPURunnerSeesNoGPU(t *testing.T) {
	noVisibilityEnv(t)
	t.Setenv(jobs.EnvCUDAVisibleDevices, "0,1") // the worker's own
	rig := startRunner(t, gpuRunner(2))
	rig.assign(gpuTask("/t/cpu", 0, printVisible))
	if got := rig.output("/t/cpu"); got != "cuda=[] set=yes" {
		t.Fatalf("0-GPU task printed %q, want CUDA_VISIBLE_DEVICES set and empty", got)
	}
	if ev := rig.waitEvent("/t/cpu", jobwire.EventStarted); len(ev.Devices) != 0 {
		t.Fatalf("started event reports devices %q", ev.Devices)
	}
	rig.assign()
	rig.waitEvent("/t/cpu", jobwire.EventExited)
}

func TestVisibilityVariableInTheRequestWinsOverTheRunners(t *testing.T) {
	noVisibilityEnv(t)
	rig := startRunner(t, jobs.RunnerOptions{CPU: 8, DeviceKind: "tpu", DeviceVariant: "v5e-8", DeviceCount: 8})
	own := gpuTask("/t/own", 1, `echo "tpu=[$TPU_VISIBLE_CHIPS] bounds=[$TPU_CHIPS_PER_HOST_BOUNDS]"; exec sleep 600`)
	own.Env = map[string]string{jobs.EnvTPUVisibleChips: "4,5,6,7"}
	rig.assign(own)
	if got := rig.output("/t/own"); got != "tpu=[4,5,6,7] bounds=[]" {
		t.Fatalf("task with its own TPU_VISIBLE_CHIPS printed %q", got)
	}
	// fray still counts the chip it assigned as held.
	if ev := rig.waitEvent("/t/own", jobwire.EventStarted); !slices.Equal(ev.Devices, []string{"0"}) {
		t.Fatalf("started event reports devices %q, want [0]", ev.Devices)
	}
	rig.assign()
	rig.waitEvent("/t/own", jobwire.EventExited)
}

func TestTPUTasksGetTheirChipsAndHostBoundsForAPartialHost(t *testing.T) {
	noVisibilityEnv(t)
	rig := startRunner(t, jobs.RunnerOptions{CPU: 8, DeviceKind: "tpu", DeviceVariant: "v5e-8", DeviceCount: 8})
	script := `echo "tpu=[$TPU_VISIBLE_CHIPS] chips=[$TPU_CHIPS_PER_HOST_BOUNDS] hosts=[$TPU_HOST_BOUNDS] cuda=[${CUDA_VISIBLE_DEVICES-unset}]"; exec sleep 600`
	rig.assign(gpuTask("/t/one", 1, script))
	if got := rig.output("/t/one"); got != "tpu=[0] chips=[1,1,1] hosts=[1,1,1] cuda=[unset]" {
		t.Fatalf("1-chip task printed %q", got)
	}
	rig.assign(gpuTask("/t/one", 1, script), gpuTask("/t/two", 2, script))
	if got := rig.output("/t/two"); got != "tpu=[1,2] chips=[1,2,1] hosts=[1,1,1] cuda=[unset]" {
		t.Fatalf("2-chip task printed %q", got)
	}
	rig.assign()
	rig.waitEvent("/t/one", jobwire.EventExited)
	rig.waitEvent("/t/two", jobwire.EventExited)
	rig.assign(gpuTask("/t/all", 8, script))
	if got := rig.output("/t/all"); got != "tpu=[0,1,2,3,4,5,6,7] chips=[] hosts=[] cuda=[unset]" {
		t.Fatalf("whole-host task printed %q", got)
	}
	rig.assign()
	rig.waitEvent("/t/all", jobwire.EventExited)
}

func TestFunctionEntrypointIsToldItsDevices(t *testing.T) {
	noVisibilityEnv(t)
	o := gpuRunner(4)
	o.Funcs = map[string]jobs.JobFunc{"show": func(ctx context.Context, env jobs.FuncEnv) error {
		_, err := fmt.Fprintf(env.Log, "devices=%s\n", strings.Join(env.Devices, ","))
		return err
	}}
	rig := startRunner(t, o)
	fn := gpuTask("/t/fn", 3, "")
	fn.Argv, fn.Func = nil, "show"
	rig.assign(fn)
	if got := rig.output("/t/fn"); got != "devices=0,1,2" {
		t.Fatalf("function logged %q", got)
	}
	rig.waitEvent("/t/fn", jobwire.EventExited)
}
