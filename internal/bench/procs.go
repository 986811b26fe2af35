package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/tasks"
	"github.com/frayhq/fray/worker"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ProcsOptions configures Procs: fray's task path with every part in its
// own process, the real binaries on one broker.
type ProcsOptions struct {
	Producers   []int // producer process counts; every pair with Workers runs
	Workers     []int // fray-worker process counts
	N           int   // tasks per pair, split among the producers
	Concurrency int   // slots of each worker
	// InFlight is the tasks each producer keeps in flight; 0 means twice
	// the slots of all workers, shared among the producers.
	InFlight int
	// Fray, Broker and Worker are the binaries: fray (whose hidden
	// `bench _tasks-producer` is each producer), fray-broker, fray-worker.
	Fray, Broker, Worker string
	// Progress, if set, hears what is starting (one line each).
	Progress io.Writer
}

// Check validates the options.
func (o ProcsOptions) Check() error {
	for _, c := range [][]int{o.Producers, o.Workers} {
		if len(c) == 0 {
			return errors.New("bench tasks: want at least one producer count and one worker count")
		}
		for _, n := range c {
			if n < 1 || n > 64 {
				return fmt.Errorf("bench tasks: %d processes: want 1 to 64", n)
			}
		}
	}
	switch {
	case o.N < 1:
		return fmt.Errorf("bench tasks: n %d: want at least 1 task", o.N)
	case o.Concurrency < 1:
		return fmt.Errorf("bench tasks: concurrency %d: want at least 1 slot", o.Concurrency)
	case o.InFlight < 0:
		return fmt.Errorf("bench tasks: in-flight %d: want at least 1 (0: the default)", o.InFlight)
	}
	for _, n := range o.Producers {
		if o.N < n {
			return fmt.Errorf("bench tasks: n %d is fewer than %d producers", o.N, n)
		}
	}
	return nil
}

// ProcsResult is one (producers, workers) pair's outcome.
type ProcsResult struct {
	Producers   int     `json:"producers"`
	Workers     int     `json:"workers"`
	Concurrency int     `json:"concurrency"`
	InFlight    int     `json:"in_flight"`
	N           int     `json:"n"`
	TasksPerS   float64 `json:"tasks_per_s"`
	// P50MS and P99MS are submit-to-result latencies of every task of the
	// run, each producer keeping InFlight tasks in flight.
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	// *CPUCores are the CPU (user and system) each kind of process used
	// during the run over its wall time: 1.0 is one core kept busy.
	BrokerCPUCores    float64 `json:"broker_cpu_cores"`
	WorkersCPUCores   float64 `json:"workers_cpu_cores"`
	ProducersCPUCores float64 `json:"producers_cpu_cores"`
	// *CPUUSPerTask are the same CPU per task, in µs.
	BrokerCPUUSPerTask    float64 `json:"broker_cpu_us_per_task"`
	WorkersCPUUSPerTask   float64 `json:"workers_cpu_us_per_task"`
	ProducersCPUUSPerTask float64 `json:"producers_cpu_us_per_task"`
	MachineCPUs           int     `json:"machine_cpus"`
}

func (r ProcsResult) String() string {
	return fmt.Sprintf("%d producers, %d workers x %d slots: %.0f tasks/s, p50 %.3f ms, p99 %.3f ms; CPU cores busy: broker %.2f, workers %.2f, producers %.2f (of %d)",
		r.Producers, r.Workers, r.Concurrency, r.TasksPerS, r.P50MS, r.P99MS, r.BrokerCPUCores, r.WorkersCPUCores, r.ProducersCPUCores, r.MachineCPUs)
}

// ProducerReport is what one producer process prints: its run's bounds,
// CPU and every task's latency.
type ProducerReport struct {
	N         int     `json:"n"`
	StartNS   int64   `json:"start_unix_ns"`
	EndNS     int64   `json:"end_unix_ns"`
	CPUUS     int64   `json:"cpu_us"`
	LatencyUS []int64 `json:"latency_us"`
}

// Procs runs every (producers, workers) pair of o, each on a fresh broker,
// and calls each with its result.
func Procs(ctx context.Context, o ProcsOptions, each func(ProcsResult) error) error {
	if err := o.Check(); err != nil {
		return err
	}
	for _, w := range o.Workers {
		for _, p := range o.Producers {
			r, err := procsPair(ctx, o, p, w)
			if err != nil {
				return fmt.Errorf("bench tasks: %d producers, %d workers: %w", p, w, err)
			}
			if err := each(r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (o ProcsOptions) say(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// procsPair runs one pair: a broker, w workers and p producers, each its
// own process, all stopped before it returns.
func procsPair(ctx context.Context, o ProcsOptions, p, w int) (ProcsResult, error) {
	if o.InFlight == 0 {
		o.InFlight = max(1, 2*w*o.Concurrency/p)
	}
	res := ProcsResult{Producers: p, Workers: w, Concurrency: o.Concurrency, InFlight: o.InFlight, N: o.N, MachineCPUs: runtimeCPUs()}
	dir, err := os.MkdirTemp("", "fray-bench-procs-*")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	var procs []*exec.Cmd
	defer func() {
		for _, c := range slices.Backward(procs) { // producers, workers, then the broker
			stopProc(c)
		}
	}()
	o.say("starting fray-broker")
	// nats-server picks the port: one reserved here and released would be
	// free for anyone to take before the broker binds it.
	brk, ready, err := startBroker(o.Broker, "--store", dir, "--port", "-1", "--log-level", "warn")
	if err != nil {
		return res, err
	}
	procs = append(procs, brk)
	nc, js, url, err := connectWhenReady(ctx, brk, ready)
	if err != nil {
		return res, err
	}
	defer nc.Close()
	o.say("fray-broker ready on %s", url)
	o.say("starting %d fray-worker(s), %d slots each", w, o.Concurrency)
	var workers []*exec.Cmd
	for i := range w {
		c, err := startProc(o.Worker, "--nats", url, "--id", fmt.Sprintf("bench-%d", i), "--concurrency", strconv.Itoa(o.Concurrency), "--log-level", "warn")
		if err != nil {
			return res, err
		}
		procs = append(procs, c)
		workers = append(workers, c)
	}
	if err := waitPulling(ctx, js, w, append([]*exec.Cmd{brk}, workers...)); err != nil {
		return res, err
	}
	o.say("starting %d producer(s), %d tasks, %d in flight each", p, o.N, o.InFlight)
	type producer struct {
		cmd   *exec.Cmd
		go_   io.WriteCloser
		lines *bufio.Scanner
	}
	var prods []producer
	for i := range p {
		n := o.N / p
		if i < o.N%p {
			n++
		}
		c := exec.Command(o.Fray, "bench", ProducerCommand, "--nats", url, "--n", strconv.Itoa(n), "--in-flight", strconv.Itoa(o.InFlight))
		c.Stderr = os.Stderr
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL} // never outlive the bench
		in, err := c.StdinPipe()
		if err != nil {
			return res, err
		}
		out, err := c.StdoutPipe()
		if err != nil {
			return res, err
		}
		if err := c.Start(); err != nil {
			return res, fmt.Errorf("start %s: %w", o.Fray, err)
		}
		procs = append(procs, c)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 64<<20) // the report lists every latency
		prods = append(prods, producer{c, in, sc})
	}
	for _, pr := range prods {
		if !pr.lines.Scan() || pr.lines.Text() != "ready" {
			return res, fmt.Errorf("producer %d did not get ready: %v", pr.cmd.Process.Pid, exitOf(pr.cmd, pr.lines.Err()))
		}
	}
	bcpu0, wcpu0 := procCPU(brk), procsCPU(workers)
	for _, pr := range prods {
		if _, err := io.WriteString(pr.go_, "go\n"); err != nil {
			return res, err
		}
	}
	var reps []ProducerReport
	for _, pr := range prods {
		if !pr.lines.Scan() {
			return res, fmt.Errorf("producer %d gave no report: %v", pr.cmd.Process.Pid, exitOf(pr.cmd, pr.lines.Err()))
		}
		var r ProducerReport
		if err := json.Unmarshal(pr.lines.Bytes(), &r); err != nil {
			return res, fmt.Errorf("producer report: %w", err)
		}
		reps = append(reps, r)
	}
	bcpu, wcpu := procCPU(brk)-bcpu0, procsCPU(workers)-wcpu0
	var start, end int64
	var pcpu time.Duration
	var lat []int64
	total := 0
	for i, r := range reps {
		if i == 0 || r.StartNS < start {
			start = r.StartNS
		}
		end = max(end, r.EndNS)
		pcpu += time.Duration(r.CPUUS) * time.Microsecond
		lat = append(lat, r.LatencyUS...)
		total += r.N
	}
	if total != o.N || len(lat) != o.N {
		return res, fmt.Errorf("producers ran %d tasks (%d latencies), want %d", total, len(lat), o.N)
	}
	wall := time.Duration(end - start)
	slices.Sort(lat)
	res.TasksPerS = float64(o.N) / wall.Seconds()
	res.P50MS = float64(lat[len(lat)/2]) / 1000
	res.P99MS = float64(lat[min(len(lat)-1, len(lat)*99/100)]) / 1000
	cores := func(d time.Duration) float64 { return d.Seconds() / wall.Seconds() }
	perTask := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(o.N) }
	res.BrokerCPUCores, res.WorkersCPUCores, res.ProducersCPUCores = cores(bcpu), cores(wcpu), cores(pcpu)
	res.BrokerCPUUSPerTask, res.WorkersCPUUSPerTask, res.ProducersCPUUSPerTask = perTask(bcpu), perTask(wcpu), perTask(pcpu)
	return res, nil
}

// startProc starts a binary in its own process group, its output on this
// process's stderr.
func startProc(bin string, args ...string) (*exec.Cmd, error) {
	c := exec.Command(bin, args...)
	c.Stdout, c.Stderr = os.Stderr, os.Stderr
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL} // never outlive the bench
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	return c, nil
}

// stopProc asks a process to stop (SIGTERM), kills it after 10 s, and
// reaps it.
func stopProc(c *exec.Cmd) {
	if c.ProcessState != nil {
		return
	}
	c.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		c.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// exitOf describes why a process stopped talking: its exit, if it exited.
func exitOf(c *exec.Cmd, err error) error {
	if err != nil {
		return err
	}
	if e := c.Wait(); e != nil {
		return e
	}
	return errors.New("it closed its output")
}

// startBroker starts fray-broker and returns a channel closed once it
// prints that it is ready (every stream and bucket provisioned: a worker
// started before that exits). Its output goes to this process's stderr.
func startBroker(bin string, args ...string) (*exec.Cmd, <-chan string, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	c := exec.Command(bin, args...)
	c.Stdout, c.Stderr = pw, os.Stderr
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL} // never outlive the bench
	err = c.Start()
	pw.Close() // the broker holds the write end now
	if err != nil {
		pr.Close()
		return nil, nil, fmt.Errorf("start %s: %w", bin, err)
	}
	ready := make(chan string, 1)
	go func() { // ends when the broker exits and its output closes
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		said := false
		for sc.Scan() {
			fmt.Fprintln(os.Stderr, sc.Text())
			if _, rest, ok := strings.Cut(sc.Text(), "fray-broker ready url="); ok && !said {
				said = true
				ready <- strings.Fields(rest)[0] // "URL store=DIR"
			}
		}
	}()
	return c, ready, nil
}

// connectWhenReady connects to the broker once it says it is ready (with
// the URL it listens on, which it returns), failing early if it exits.
func connectWhenReady(ctx context.Context, brk *exec.Cmd, ready <-chan string) (*nats.Conn, jetstream.JetStream, string, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case url := <-ready:
			nc, err := nats.Connect(url)
			if err != nil {
				return nil, nil, "", err
			}
			js, err := jetstream.New(nc)
			if err != nil {
				nc.Close()
				return nil, nil, "", err
			}
			return nc, js, url, nil
		default:
		}
		if err := alive(ctx, deadline, brk); err != nil {
			return nil, nil, "", fmt.Errorf("fray-broker not ready: %w", err)
		}
	}
}

// waitPulling waits until w workers have pull requests waiting on the
// default pool's consumer: every worker is up and taking tasks.
func waitPulling(ctx context.Context, js jetstream.JetStream, w int, watch []*exec.Cmd) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := js.Consumer(ctx, broker.StreamTasks, taskwire.ConsumerName(tasks.DefaultPool)); err == nil {
			if info, err := c.Info(ctx); err == nil && info.NumWaiting >= w {
				return nil
			}
		}
		for _, c := range watch {
			if err := alive(ctx, deadline, c); err != nil {
				return fmt.Errorf("waiting for %d workers to pull: %w", w, err)
			}
		}
	}
}

// alive pauses a poll's interval and fails if ctx ended, the deadline
// passed or c exited.
func alive(ctx context.Context, deadline time.Time, c *exec.Cmd) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(20 * time.Millisecond): // poll interval
	}
	if time.Now().After(deadline) {
		return errors.New("timed out")
	}
	if err := syscall.Kill(c.Process.Pid, 0); err != nil || isZombie(c.Process.Pid) {
		return fmt.Errorf("%s exited", filepath.Base(c.Path))
	}
	return nil
}

// procCPU is the CPU time (user and system) process c has used, from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s).
func procCPU(c *exec.Cmd) time.Duration {
	f := procStat(c.Process.Pid)
	if len(f) < 15 {
		return 0
	}
	u, _ := strconv.ParseInt(f[13], 10, 64)
	s, _ := strconv.ParseInt(f[14], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

func procsCPU(cs []*exec.Cmd) time.Duration {
	var d time.Duration
	for _, c := range cs {
		d += procCPU(c)
	}
	return d
}

func isZombie(pid int) bool {
	f := procStat(pid)
	return len(f) > 2 && f[2] == "Z"
}

// procStat is /proc/<pid>/stat split in fields, the command name (field 2,
// which may hold spaces) kept as one.
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return nil
	}
	return append([]string{strings.TrimSpace(s[:i]), s[i+1 : j]}, strings.Fields(s[j+1:])...)
}

// runtimeCPUs is the machine's CPU count.
func runtimeCPUs() int {
	n := 0
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		n = strings.Count(string(b), "\nprocessor")
		if strings.HasPrefix(string(b), "processor") {
			n++
		}
	}
	return max(n, 1)
}

// ProducerCommand is the hidden `fray bench` subcommand each producer
// process of Procs runs.
const ProducerCommand = "_tasks-producer"

// RunProducer is one producer process of Procs: it connects to url, prints
// "ready", waits for a line on in, runs n no-op tasks keeping inFlight in
// flight, and prints its ProducerReport as one JSON line.
func RunProducer(ctx context.Context, url string, n, inFlight int, in io.Reader, out io.Writer) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	p, err := tasks.NewProducer(ctx, nc, tasks.ProducerOptions{})
	if err != nil {
		return err
	}
	defer p.Close()
	if _, err := fmt.Fprintln(out, "ready"); err != nil {
		return err
	}
	if _, err := bufio.NewReader(in).ReadString('\n'); err != nil {
		return fmt.Errorf("waiting for the start signal: %w", err)
	}
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	lats := make([][]int64, min(inFlight, n))
	errs := make(chan error, len(lats))
	st := startPhase(nil) // the broker is another process
	start := time.Now()
	for i := range lats {
		go func() {
			for range work {
				t0 := time.Now()
				if err := p.Submit(ctx, worker.FnNoop, nil).Get(ctx, nil); err != nil {
					errs <- err
					return
				}
				lats[i] = append(lats[i], time.Since(t0).Microseconds())
			}
			errs <- nil
		}()
	}
	for range lats {
		if err := <-errs; err != nil {
			return err
		}
	}
	end := time.Now()
	r := st.measure(n)
	rep := ProducerReport{N: n, StartNS: start.UnixNano(), EndNS: end.UnixNano(), CPUUS: int64(r.cpuUS * float64(n)), LatencyUS: slices.Concat(lats...)}
	return json.NewEncoder(out).Encode(rep)
}
