package cluster_test

import (
	"context"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/cluster"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
)

// Workers of one local cluster share the host: each offers jobs its share
// of the CPUs and memory, so the dispatcher never books the machine twice.
func TestLocalWorkersShareTheHostsCapacity(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	l, err := cluster.StartLocal(ctx, cluster.LocalOptions{Workers: 2, Broker: broker.Options{Port: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	_, js := frayt.Connect(t, l.URL())
	kv, err := js.KeyValue(ctx, broker.BucketWorkers)
	if err != nil {
		t.Fatal(err)
	}
	var infos []broker.WorkerInfo
	frayt.Eventually(t, 10*time.Second, "two workers registered", func() bool {
		infos = infos[:0]
		for _, id := range []string{"local-0", "local-1"} {
			e, err := kv.Get(context.Background(), id)
			if err != nil {
				return false
			}
			var wi broker.WorkerInfo
			if objects.Unmarshal(e.Value(), &wi) != nil {
				return false
			}
			infos = append(infos, wi)
		}
		return true
	})
	var cpu float64
	var ram int64
	for _, wi := range infos {
		cpu += wi.Resources.CPU
		ram += wi.Resources.RAMBytes
	}
	if math.Abs(cpu-float64(runtime.NumCPU())) > 1e-9 {
		t.Errorf("workers offer %.2f CPUs in all, the host has %d", cpu, runtime.NumCPU())
	}
	if mem := jobs.HostMemory(); mem > 0 && (ram > mem || ram < mem-2) {
		t.Errorf("workers offer %d bytes of RAM in all, the host has %d", ram, mem)
	}
}

// Its workers are in-process, so a local cluster fails a job that none of
// them can run within about a second, not after the dispatcher's 10 s
// startup grace for workers still registering elsewhere.
func TestLocalClusterFailsAJobNoWorkerCanRunPromptly(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	l, err := cluster.StartLocal(ctx, cluster.LocalOptions{Broker: broker.Options{Port: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	nc, js := frayt.Connect(t, l.URL())
	jc, err := jobs.NewClient(ctx, nc, js, jobs.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	req := jobs.JobRequest{Name: "needs-tpu", Entrypoint: jobs.Command("true")}
	if err := req.WithTPU("v5e-16", 1); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	h, err := jc.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := h.Wait(ctx)
	if err != nil || rec.Status != jobs.StatusFailed {
		t.Fatalf("%+v, %v: want FAILED", rec, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("failed after %s: the startup grace was not shortened", took.Round(time.Millisecond))
	}
}

// A local cluster is started once its dispatcher answers: a client asking
// it something the moment StartLocal returns gets an answer.
func TestALocalClusterIsStartedOnceItsDispatcherAnswers(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	l, err := cluster.StartLocal(ctx, cluster.LocalOptions{NoWorkers: true, Broker: broker.Options{Port: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	nc, js := frayt.Connect(t, l.URL())
	jc, err := jobs.NewClient(ctx, nc, js, jobs.ClientOptions{Namespace: "test", Parent: "-"})
	if err != nil {
		t.Fatal(err)
	}
	rep, ok, err := jc.Backends(ctx)
	if err != nil || !ok || len(rep.Backends) == 0 {
		t.Fatalf("asked the dispatcher as StartLocal returned: %+v, answered %v, %v; want its backends", rep, ok, err)
	}
}
