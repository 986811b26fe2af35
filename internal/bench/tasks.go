// Package bench holds the measurements behind `fray bench`: each runs a
// real in-process broker on file storage and reports numbers comparable
// within one run (the baseline is measured in the same process, same run).
package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/registry"
	"github.com/frayhq/fray/tasks"
	"github.com/frayhq/fray/worker"
	"github.com/frayhq/fray/worker/langrt"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TasksOptions configures Tasks.
type TasksOptions struct {
	N           int  // tasks in the throughput phase
	Concurrency int  // worker slots
	Payload     int  // argument bytes per task
	Sequential  int  // tasks in the one-at-a-time latency phase; defaults to min(N, 2000)
	Baseline    bool // also measure the bare JetStream path
	// Rounds, with Baseline and above 1, measures fray's throughput phase
	// and the same-work bare path Rounds times, alternating, in this
	// process, and reports the medians: on a shared machine whose load
	// drifts, pairs measured seconds apart compare better than runs
	// measured minutes apart. 0 or 1: one of each.
	Rounds int
	// Cluster, if 3, runs on three in-process brokers joined in a cluster,
	// every stream with three replicas (the bare path's too); the producer
	// is on the first node and the worker on the last. 0 or 1: one broker.
	Cluster  int
	StoreDir string
	// Python, if set, runs the no-op task in the worker's Python runtime
	// (Procs processes, default one per slot) instead of in Go: the tasks are
	// PythonNoop, served by the runtime's frayhq.runtime._bench module.
	Python *langrt.Options
}

// PythonNoop is the Python no-op task of the bench (frayhq.runtime._bench).
const PythonNoop = "py.bench.noop"

// PythonEcho is the Python actor class of the bench (frayhq.runtime._bench).
const PythonEcho = "py.bench.Echo"

// PythonBenchModule registers the Python bench task and actor class.
const PythonBenchModule = "frayhq.runtime._bench"

// TasksResult is the outcome of one Tasks run.
type TasksResult struct {
	N           int     `json:"n"`
	Concurrency int     `json:"concurrency"`
	Brokers     int     `json:"brokers"`
	Replicas    int     `json:"replicas"`
	TasksPerS   float64 `json:"tasks_per_s"`
	// CPUUSPerTask is the process's CPU (broker, worker and producer, user
	// and system) per task in the throughput phase, in µs; steadier than
	// rates on a noisy machine. Each bare path reports its own.
	CPUUSPerTask float64 `json:"cpu_us_per_task"`
	// AllocsPerTask and AllocBytesPerTask are the process's heap
	// allocations per task in the throughput phase (broker included).
	AllocsPerTask     float64 `json:"allocs_per_task"`
	AllocBytesPerTask float64 `json:"alloc_bytes_per_task"`
	// BrokerMsgsPerTask and BrokerBytesPerTask are what the brokers moved
	// per task in the throughput phase: messages received and delivered
	// (tasks, pull requests, deliveries, results, PubAcks, acks,
	// republished results; a cluster's routes too), and their headers and
	// payloads in bytes (nats-server's in/out counts; subjects not
	// included). The same-work path reports its own.
	BrokerMsgsPerTask  float64 `json:"broker_msgs_per_task"`
	BrokerBytesPerTask float64 `json:"broker_bytes_per_task"`
	P50MS              float64 `json:"p50_ms"`
	P99MS              float64 `json:"p99_ms"`
	BaselineTasksPerS  float64 `json:"baseline_tasks_per_s,omitempty"`
	Ratio              float64 `json:"ratio,omitempty"`
	BaselineCPUUS      float64 `json:"baseline_cpu_us_per_task,omitempty"`
	// The bare path again, pulling only for free slots as fray's worker
	// does: what that rule costs by itself, apart from fray's other work.
	FreeSlotsTasksPerS float64 `json:"baseline_free_slots_tasks_per_s,omitempty"`
	FreeSlotsRatio     float64 `json:"ratio_free_slots,omitempty"`
	FreeSlotsCPUUS     float64 `json:"baseline_free_slots_cpu_us_per_task,omitempty"`
	// The bare path doing the work fray guarantees and no more: a
	// deduplication id on each task, published as fray's producer publishes
	// (barePath.storeResults), pulling only for free slots, storing each
	// result in a stream that republishes it to the producer, and acking the
	// task once the result's PubAck arrives.
	SameWorkTasksPerS   float64 `json:"baseline_same_work_tasks_per_s,omitempty"`
	SameWorkRatio       float64 `json:"ratio_same_work,omitempty"`
	SameWorkCPUUS       float64 `json:"baseline_same_work_cpu_us_per_task,omitempty"`
	SameWorkAllocs      float64 `json:"baseline_same_work_allocs_per_task,omitempty"`
	SameWorkBytes       float64 `json:"baseline_same_work_alloc_bytes_per_task,omitempty"`
	SameWorkBrokerMsgs  float64 `json:"baseline_same_work_broker_msgs_per_task,omitempty"`
	SameWorkBrokerBytes float64 `json:"baseline_same_work_broker_bytes_per_task,omitempty"`
	// With Rounds above 1: the rounds, and each round's fray/same-work
	// throughput ratio. SameWorkRatio is then the median of these ratios,
	// and every rate, CPU and allocation figure of fray and of the
	// same-work path is the median over the rounds.
	Rounds         int       `json:"rounds,omitempty"`
	SameWorkRatios []float64 `json:"ratio_same_work_rounds,omitempty"`
}

func (r TasksResult) String() string {
	s := fmt.Sprintf("tasks: %d no-op tasks, %d slots: %.0f tasks/s (results back to the producer), %.0f µs CPU per task, %.0f allocations (%.0f bytes) per task in the process, %.1f messages (%.0f bytes) per task through the broker\nlatency one at a time: p50 %.3f ms, p99 %.3f ms",
		r.N, r.Concurrency, r.TasksPerS, r.CPUUSPerTask, r.AllocsPerTask, r.AllocBytesPerTask, r.BrokerMsgsPerTask, r.BrokerBytesPerTask, r.P50MS, r.P99MS)
	if r.BaselineTasksPerS > 0 {
		s += fmt.Sprintf("\nbaseline (bare JetStream: async publish, pull with 500 prefetched, ack, core reply): %.0f msgs/s, %.0f µs CPU each\nfray/baseline: %.2f", r.BaselineTasksPerS, r.BaselineCPUUS, r.Ratio)
	}
	if r.FreeSlotsTasksPerS > 0 {
		s += fmt.Sprintf("\nbare JetStream pulling only for free slots, as fray does: %.0f msgs/s, %.0f µs CPU each (fray/that: %.2f)", r.FreeSlotsTasksPerS, r.FreeSlotsCPUUS, r.FreeSlotsRatio)
	}
	if r.SameWorkTasksPerS > 0 {
		s += fmt.Sprintf("\nbare JetStream doing fray's work (a deduplication id per task, free slots, result stored and republished, ack after its PubAck): %.0f msgs/s, %.0f µs CPU, %.0f allocations (%.0f bytes), %.1f messages (%.0f bytes) through the broker each (fray/that: %.2f)", r.SameWorkTasksPerS, r.SameWorkCPUUS, r.SameWorkAllocs, r.SameWorkBytes, r.SameWorkBrokerMsgs, r.SameWorkBrokerBytes, r.SameWorkRatio)
	}
	if r.Rounds > 1 {
		s += fmt.Sprintf("\n%d rounds of fray and the same-work path, alternating: medians above; fray/that per round: %.2f", r.Rounds, r.SameWorkRatios)
	}
	return s
}

// Tasks measures fray's task path end to end: one producer, an in-process
// broker on file storage, one worker with Concurrency slots, every result
// back to the producer.
func Tasks(ctx context.Context, o TasksOptions) (TasksResult, error) {
	if o.N <= 0 || o.Concurrency <= 0 || o.Payload < 0 {
		return TasksResult{}, fmt.Errorf("bench tasks: n %d, concurrency %d, payload %d: want n, concurrency > 0 and payload >= 0", o.N, o.Concurrency, o.Payload)
	}
	if err := CheckCluster(o.Cluster); err != nil {
		return TasksResult{}, err
	}
	if o.Rounds < 0 || (o.Rounds > 1 && !o.Baseline) {
		return TasksResult{}, fmt.Errorf("bench tasks: rounds %d: want 0 or 1, or more with the baseline (rounds pair fray with the same-work bare path)", o.Rounds)
	}
	nodes := max(1, o.Cluster)
	if o.Sequential == 0 {
		o.Sequential = min(o.N, 2000)
	}
	res := TasksResult{N: o.N, Concurrency: o.Concurrency, Brokers: nodes, Replicas: nodes}
	fn := worker.FnNoop
	reg := tasks.NewRegistry()
	if err := worker.RegisterBuiltins(reg); err != nil {
		return res, err
	}
	if o.Python != nil {
		po := *o.Python
		if po.Procs == 0 {
			po.Procs = o.Concurrency
		}
		po.Imports = append(slices.Clone(po.Imports), PythonBenchModule)
		rt, err := langrt.Start(ctx, po)
		if err != nil {
			return res, err
		}
		defer rt.Close()
		if err := rt.RegisterTasks(reg); err != nil {
			return res, err
		}
		fn = PythonNoop
	}
	dir := o.StoreDir
	if dir == "" {
		d, err := os.MkdirTemp("", "fray-bench-*")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	srvs, err := startBrokers(ctx, nodes, dir)
	if err != nil {
		return res, err
	}
	defer shutdown(srvs)
	// On a cluster the producer and the worker sit on different nodes.
	purl, wurl := srvs[0].ClientURL(), srvs[nodes-1].ClientURL()
	pnc, err := nats.Connect(purl)
	if err != nil {
		return res, err
	}
	defer pnc.Close()
	js, err := jetstream.New(pnc)
	if err != nil {
		return res, err
	}
	if err := broker.Provision(ctx, js, pnc.ConnectedServerVersion(), broker.ProvisionOptions{Replicas: nodes}); err != nil {
		return res, err
	}
	at := site{purl: purl, wurl: wurl, js: js, meter: srvs}

	// The pool directory, as fray-broker keeps it.
	stopDirectory := registry.NewMaintainer(js, registry.MaintainerOptions{}).Start()
	defer func() { _ = stopDirectory() }()

	// The worker, on its own connection as in a real deployment.
	wnc, err := nats.Connect(wurl)
	if err != nil {
		return res, err
	}
	defer wnc.Close()
	w, err := worker.New(wnc, worker.Options{ID: "bench", Concurrency: o.Concurrency, Registry: reg})
	if err != nil {
		return res, err
	}
	wctx, stopWorker := context.WithCancel(context.Background())
	werr := make(chan error, 1)
	go func() { werr <- w.Run(wctx) }()
	defer func() { stopWorker(); <-werr }()

	store, err := objects.New(ctx, js, objects.Options{})
	if err != nil {
		return res, err
	}
	p, err := tasks.NewProducer(ctx, pnc, tasks.ProducerOptions{Objects: store})
	if err != nil {
		return res, err
	}
	defer p.Close()
	// Wait for the worker to register so the first submission finds it.
	for served, _ := p.Workers().Serves(tasks.DefaultPool, fn); !served; served, _ = p.Workers().Serves(tasks.DefaultPool, fn) {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(5 * time.Millisecond): // registry poll
		}
	}
	arg := make([]byte, o.Payload)

	// Warm up, then the throughput phase.
	if err := runBatch(ctx, p, fn, min(o.N, 1000), arg); err != nil {
		return res, err
	}
	var sameWork rate // measured in the rounds, if any
	if o.Rounds > 1 {
		fray, bare, err := tasksRounds(ctx, o, p, fn, arg, at)
		if err != nil {
			return res, err
		}
		res.Rounds = o.Rounds
		for i := range fray {
			res.SameWorkRatios = append(res.SameWorkRatios, fray[i].perS/bare[i].perS)
		}
		res.SameWorkRatio = Median(res.SameWorkRatios)
		r, sw := medianRate(fray), medianRate(bare)
		res.setFray(r)
		sameWork = sw
	} else {
		start := startPhase(at.meter)
		if err := runBatch(ctx, p, fn, o.N, arg); err != nil {
			return res, err
		}
		res.setFray(start.measure(o.N))
	}

	// Latency, one task at a time.
	lat := make([]time.Duration, 0, o.Sequential)
	for range o.Sequential {
		t0 := time.Now()
		if err := p.Submit(ctx, fn, arg).Get(ctx, nil); err != nil {
			return res, err
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	res.P50MS = ms(lat[len(lat)/2])
	res.P99MS = ms(lat[min(len(lat)-1, len(lat)*99/100)])

	if o.Baseline {
		stopWorker()
		<-werr
		werr <- nil
		for _, b := range []struct {
			path               barePath
			perS, ratio, cpuUS *float64
		}{
			{barePath{}, &res.BaselineTasksPerS, &res.Ratio, &res.BaselineCPUUS},
			{barePath{freeSlots: true}, &res.FreeSlotsTasksPerS, &res.FreeSlotsRatio, &res.FreeSlotsCPUUS},
			{barePath{freeSlots: true, storeResults: true}, &res.SameWorkTasksPerS, &res.SameWorkRatio, &res.SameWorkCPUUS},
		} {
			if b.path.storeResults && res.Rounds > 1 {
				// Measured in the rounds: the medians, and the median of
				// the rounds' ratios.
				res.SameWorkTasksPerS, res.SameWorkCPUUS = sameWork.perS, sameWork.cpuUS
				res.setSameWork(sameWork)
				continue
			}
			r, err := bare(ctx, at, o.N, o.Concurrency, arg, b.path)
			if err != nil {
				return res, err
			}
			*b.perS, *b.ratio, *b.cpuUS = r.perS, res.TasksPerS/r.perS, r.cpuUS
			if b.path.storeResults {
				res.setSameWork(r)
			}
		}
	}
	return res, nil
}

// setFray sets fray's figures of the throughput phase.
func (r *TasksResult) setFray(f rate) {
	r.TasksPerS, r.CPUUSPerTask, r.AllocsPerTask, r.AllocBytesPerTask = f.perS, f.cpuUS, f.allocs, f.allocBytes
	r.BrokerMsgsPerTask, r.BrokerBytesPerTask = f.brokerMsgs, f.brokerBytes
}

// setSameWork sets the same-work path's allocation and broker figures
// (its rate, CPU and ratio are set with the other bare paths').
func (r *TasksResult) setSameWork(b rate) {
	r.SameWorkAllocs, r.SameWorkBytes = b.allocs, b.allocBytes
	r.SameWorkBrokerMsgs, r.SameWorkBrokerBytes = b.brokerMsgs, b.brokerBytes
}

// tasksRounds measures fray's throughput phase and then the same-work bare
// path, o.Rounds times. The worker stays up through the bare rounds (it
// idles on one open pull request of its own consumer).
func tasksRounds(ctx context.Context, o TasksOptions, p *tasks.Producer, fn string, arg []byte, at site) (fray, bareRates []rate, err error) {
	for range o.Rounds {
		start := startPhase(at.meter)
		if err := runBatch(ctx, p, fn, o.N, arg); err != nil {
			return nil, nil, err
		}
		fray = append(fray, start.measure(o.N))
		b, err := bare(ctx, at, o.N, o.Concurrency, arg, barePath{freeSlots: true, storeResults: true})
		if err != nil {
			return nil, nil, err
		}
		bareRates = append(bareRates, b)
	}
	return fray, bareRates, nil
}

// medianRate is the median of each figure of rs, taken apart.
func medianRate(rs []rate) rate {
	pick := func(f func(rate) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return Median(v)
	}
	return rate{perS: pick(func(r rate) float64 { return r.perS }), cpuUS: pick(func(r rate) float64 { return r.cpuUS }),
		allocs: pick(func(r rate) float64 { return r.allocs }), allocBytes: pick(func(r rate) float64 { return r.allocBytes }),
		brokerMsgs: pick(func(r rate) float64 { return r.brokerMsgs }), brokerBytes: pick(func(r rate) float64 { return r.brokerBytes })}
}

// Median is the middle value of v (the mean of the middle two for an even
// count), without reordering v; 0 for none.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// CheckCluster validates TasksOptions.Cluster.
func CheckCluster(n int) error {
	if n != 0 && n != 1 && n != 3 {
		return fmt.Errorf("bench tasks: cluster of %d brokers: want 3 (a replicated cluster) or 1", n)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func runBatch(ctx context.Context, p *tasks.Producer, fn string, n int, arg []byte) error {
	futs := make([]*tasks.Future, n)
	for i := range futs {
		futs[i] = p.Submit(ctx, fn, arg)
	}
	for _, f := range futs {
		if err := f.Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}
