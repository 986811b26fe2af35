package dispatcher

import (
	"strings"
	"testing"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
)

func worker(id string, cpu float64, attrs map[string]string) WorkerState {
	return WorkerState{Info: broker.WorkerInfo{ID: id, Attributes: attrs, Resources: broker.WorkerResources{CPU: cpu, RAMBytes: 8 << 30}}}
}

func tpuWorker(id, variant, slice string) WorkerState {
	return WorkerState{Info: broker.WorkerInfo{ID: id, Attributes: map[string]string{"tpu-name": slice},
		Resources: broker.WorkerResources{CPU: 8, DeviceKind: "tpu", DeviceVariant: variant, DeviceCount: 4}}}
}

func req(replicas int, cpu float64) *jobs.JobRequest {
	return &jobs.JobRequest{Name: "j", Replicas: replicas, Resources: jobs.ResourceConfig{CPU: cpu}, Entrypoint: jobs.Command("true")}
}

func TestPlaceMatchesAttributesAndConstraints(t *testing.T) {
	ws := []WorkerState{
		worker("a", 4, map[string]string{"region": "us", "zone": "us-a", "preemptible": "false", "pool": "x"}),
		worker("b", 4, map[string]string{"region": "eu", "preemptible": "true"}),
	}
	cases := []struct {
		name string
		mut  func(*jobs.JobRequest)
		want string // worker, or "" for none
	}{
		{"region pin", func(r *jobs.JobRequest) { r.Resources.Regions = []string{"eu"} }, "b"},
		{"any region", func(r *jobs.JobRequest) { r.Resources.Regions = []string{"*"} }, "a"},
		{"zone", func(r *jobs.JobRequest) { r.Resources.Zone = "us-a" }, "a"},
		{"non-preemptible", func(r *jobs.JobRequest) { r.Resources.Preemptible = jobwire.Ptr(false); r.Resources.Regions = nil }, "a"},
		{"EQ", func(r *jobs.JobRequest) {
			r.Constraints = []jobs.Constraint{{Key: "region", Op: "EQ", Values: []string{"eu"}}}
		}, "b"},
		{"NE", func(r *jobs.JobRequest) {
			r.Constraints = []jobs.Constraint{{Key: "region", Op: "NE", Values: []string{"us"}}}
		}, "b"},
		{"IN", func(r *jobs.JobRequest) {
			r.Constraints = []jobs.Constraint{{Key: "zone", Op: "IN", Values: []string{"x", "us-a"}}}
		}, "a"},
		{"EXISTS", func(r *jobs.JobRequest) { r.Constraints = []jobs.Constraint{{Key: "pool", Op: "EXISTS"}} }, "a"},
		{"no match", func(r *jobs.JobRequest) { r.Resources.Regions = []string{"asia"} }, ""},
		{"too big", func(r *jobs.JobRequest) { r.Resources.CPU = 16 }, ""},
	}
	for _, c := range cases {
		r := req(1, 1)
		c.mut(r)
		p := Place(r, ws)
		got := ""
		if len(p.Workers) == 1 {
			got = p.Workers[0]
		}
		if got != c.want {
			t.Errorf("%s: placed on %q, want %q (%s)", c.name, got, c.want, p.Reason)
		}
		if c.want == "" && (!p.Never || p.Reason == "") {
			t.Errorf("%s: want a never-fits reason, got %+v", c.name, p)
		}
	}
}

func TestPlaceIsAllOrNothingAndCountsUsedCapacity(t *testing.T) {
	ws := []WorkerState{worker("a", 2, nil), worker("b", 2, nil)}
	if p := Place(req(4, 1), ws); len(p.Workers) != 4 {
		t.Fatalf("4 fit: %+v", p)
	}
	ws[0].Used = Need{CPU: 1}
	p := Place(req(4, 1), ws)
	if p.Workers != nil || p.Never || !strings.Contains(p.Reason, "3 of 4") {
		t.Fatalf("gang must wait: %+v", p)
	}
	ws[0].Info.Draining = true
	if p := Place(req(2, 1), ws); len(p.Workers) != 2 || p.Workers[0] != "b" || p.Workers[1] != "b" {
		t.Fatalf("draining worker used: %+v", p)
	}
	r := req(1, 1)
	r.Resources.RAM = "16g"
	if p := Place(r, ws); !p.Never || !strings.Contains(p.Reason, "too small") {
		t.Fatalf("ram: %+v", p)
	}
}

func TestPlaceCoschedulesOnOneSliceOfTheRightTPU(t *testing.T) {
	var ws []WorkerState
	for i := range 4 {
		ws = append(ws, tpuWorker("a"+string(rune('0'+i)), "v5e-16", "a"))
	}
	for i := range 4 {
		ws = append(ws, tpuWorker("b"+string(rune('0'+i)), "v5e-16", "b"))
	}
	ws = append(ws, tpuWorker("c0", "v5p-8", "c"))
	var r jobs.JobRequest
	if err := r.WithTPU("v5e-16", 1); err != nil {
		t.Fatal(err)
	}
	r.Resources.CPU = 1
	ws[1].Used = Need{Devices: 4} // slice a is partly busy
	p := Place(&r, ws)
	if len(p.Workers) != 4 {
		t.Fatalf("%+v", p)
	}
	for _, w := range p.Workers {
		if w[0] != 'b' {
			t.Fatalf("replica on %s, want slice b: %v", w, p.Workers)
		}
	}
	if err := r.WithTPU("v6e-8", 1); err != nil {
		t.Fatal(err)
	}
	if p := Place(&r, ws); !p.Never || !strings.Contains(p.Reason, "v6e-8") {
		t.Fatalf("wrong variant: %+v", p)
	}
	var g jobs.JobRequest
	_ = g.WithGPU("H100", 1)
	if p := Place(&g, ws); !p.Never || !strings.Contains(p.Reason, "has no gpu") {
		t.Fatalf("gpu: %+v", p)
	}
}

func TestPlaceSaysNeverForAGangLargerThanAllMatchingWorkersWhenIdle(t *testing.T) {
	ws := []WorkerState{worker("a", 2, nil), worker("b", 4, map[string]string{"tpu-name": "s1"})}
	ws[0].Used = Need{CPU: 2} // busy now, but counts for "could ever"
	p := Place(req(7, 1), ws)
	if p.Workers != nil || !p.Never || !strings.Contains(p.Reason, "at most 6 of 7") {
		t.Fatalf("7 replicas on 6 cores: %+v", p)
	}
	if p := Place(req(6, 1), ws); p.Workers != nil || p.Never {
		t.Fatalf("6 replicas on 6 cores, 2 busy, must wait: %+v", p)
	}
}

func TestPlaceSaysWhatAJobNeedsAndWhatTheWorkersHaveWhenNoneCanRunIt(t *testing.T) {
	ws := []WorkerState{worker("c0", 4, nil), worker("c1", 4, nil), tpuWorker("t0", "v5e-16", "s"),
		{Info: broker.WorkerInfo{ID: "g0", Resources: broker.WorkerResources{CPU: 8, DeviceKind: "gpu", DeviceVariant: "A100", DeviceCount: 8}}}}
	var r jobs.JobRequest
	if err := r.WithGPU("H100", 1); err != nil {
		t.Fatal(err)
	}
	p := Place(&r, ws)
	if !p.Never {
		t.Fatalf("an H100 job on workers without H100s must never fit: %+v", p)
	}
	for _, want := range []string{
		"gpu H100:1", // what a replica needs
		"2 of 4 workers: has no gpu (no accelerators)", // what the cpu workers have
		"1 of 4 workers: has no gpu (4× tpu v5e-16)",   // what the tpu worker has
		"1 of 4 workers: has gpu A100, not H100",
	} {
		if !strings.Contains(p.Reason, want) {
			t.Errorf("reason lacks %q:\n%s", want, p.Reason)
		}
	}
	ws = append(ws, WorkerState{Info: broker.WorkerInfo{ID: "l0", Resources: broker.WorkerResources{CPU: 8, DeviceKind: "gpu", DeviceVariant: "L4", DeviceCount: 1}}})
	if p := Place(&r, ws); !strings.Contains(p.Reason, "1 of 5 workers: another reason (see fray workers)") {
		t.Errorf("a fourth reason is not counted:\n%s", p.Reason)
	}
}
