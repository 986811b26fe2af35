package jobs_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
)

func TestTPUTableKnowsChipsAndVMsPerSlice(t *testing.T) {
	cases := []struct {
		variant  string
		chips    int
		vms      int
		topology string
	}{
		{"v4-8", 4, 1, "2x2x1"},
		{"v4-32", 16, 4, "2x2x4"},
		{"v5e-1", 1, 1, "1x1"},
		{"v5e-8", 8, 1, "2x4"},
		{"v5e-16", 16, 4, "4x4"},
		{"v5litepod-256", 256, 64, "16x16"},
		{"v5p-8", 4, 1, "2x2x1"},
		{"v5p-128", 64, 16, "4x4x4"},
		{"v6e-4", 4, 1, "2x2"},
		{"v6e-64", 64, 16, "8x8"},
	}
	for _, c := range cases {
		tt, ok := jobs.LookupTPU(c.variant)
		if !ok || tt.Chips != c.chips || tt.VMs != c.vms || tt.Hosts != c.vms || tt.Topology != c.topology || tt.ChipsPerVM()*tt.VMs != tt.Chips {
			t.Errorf("%s: got %+v ok=%v, want chips %d vms %d topology %s", c.variant, tt, ok, c.chips, c.vms, c.topology)
		}
	}
	if _, ok := jobs.LookupTPU("v9-8"); ok {
		t.Error("unknown variant found")
	}
}

func TestWithTPUSetsReplicasToSlicesTimesVMs(t *testing.T) {
	var r jobs.JobRequest
	if err := r.WithTPU("v5e-16", 2); err != nil {
		t.Fatal(err)
	}
	if r.Replicas != 8 || r.Resources.Device.Kind != jobs.DeviceTPU || r.Resources.Device.Count != 4 || r.Resources.Device.Topology != "4x4" {
		t.Fatalf("%+v", r)
	}
	if r.Coscheduling != nil {
		t.Fatal("two slices cannot share one tpu-name")
	}
	var one jobs.JobRequest
	if err := one.WithTPU("v5e-16", 1); err != nil {
		t.Fatal(err)
	}
	if one.Replicas != 4 || one.Coscheduling == nil || one.Coscheduling.GroupBy != "tpu-name" {
		t.Fatalf("%+v", one)
	}
	if err := one.WithTPU("v5e-17", 1); !errors.Is(err, jobs.ErrInvalid) || !strings.Contains(err.Error(), "v5e-16") {
		t.Fatalf("unknown type: %v", err)
	}
	var g jobs.JobRequest
	if err := g.WithGPU("H100", 8); err != nil || g.Resources.Device.Count != 8 || g.Resources.Device.Kind != "gpu" {
		t.Fatalf("%v %+v", err, g.Resources.Device)
	}
	if err := g.WithGPU("H100", 0); err == nil {
		t.Fatal("0 GPUs accepted")
	}
}

func TestParseBytesReadsHumanSizes(t *testing.T) {
	cases := map[string]int64{"": 0, "1024": 1024, "4g": 4 << 30, "4G": 4 << 30, "4GiB": 4 << 30, "4gb": 4 << 30,
		"512m": 512 << 20, "1.5g": 3 << 29, "100k": 100 << 10, "2t": 2 << 40}
	for in, want := range cases {
		got, err := jobs.ParseBytes(in)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"g", "-1g", "4x", "four"} {
		if _, err := jobs.ParseBytes(bad); !errors.Is(err, jobs.ErrInvalid) {
			t.Errorf("ParseBytes(%q) accepted", bad)
		}
	}
	if s := jobwire.FormatBytes(3 << 29); s != "1.5g" {
		t.Errorf("FormatBytes = %s", s)
	}
}

func TestValidateRefusesBadRequestsWithClearErrors(t *testing.T) {
	ok := jobs.JobRequest{Name: "train-v1.2_x", Entrypoint: jobs.Command("python", "train.py")}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		mut  func(*jobs.JobRequest)
		want string
	}{
		{func(r *jobs.JobRequest) { r.Name = "my job" }, "space"},
		{func(r *jobs.JobRequest) { r.Name = "a/b" }, "'/'"},
		{func(r *jobs.JobRequest) { r.Name = "" }, "empty"},
		{func(r *jobs.JobRequest) { r.Entrypoint = jobs.Entrypoint{} }, "entrypoint is empty"},
		{func(r *jobs.JobRequest) { r.Entrypoint.Func = "f" }, "both"},
		{func(r *jobs.JobRequest) { r.Resources.RAM = "lots" }, "ram"},
		{func(r *jobs.JobRequest) { r.Resources.Device = jobs.DeviceConfig{Kind: "tpu", Variant: "v99"} }, "unknown TPU"},
		{func(r *jobs.JobRequest) { r.Resources.Device = jobs.DeviceConfig{Kind: "gpu", Variant: "H100"} }, "gpu count"},
		{func(r *jobs.JobRequest) { r.Resources.Device = jobs.DeviceConfig{Kind: "fpga"} }, "device kind"},
		{func(r *jobs.JobRequest) { r.Constraints = []jobs.Constraint{{Key: "k", Op: "LIKE"}} }, "operator"},
		{func(r *jobs.JobRequest) { r.Constraints = []jobs.Constraint{{Key: "k", Op: "EQ"}} }, "exactly one"},
		{func(r *jobs.JobRequest) { r.Resources.Regions = []string{"*", "us"} }, "cannot be combined"},
		{func(r *jobs.JobRequest) { r.Timeout = -time.Second }, "negative"},
		{func(r *jobs.JobRequest) { r.SchedulingTimeout = -time.Second }, "scheduling timeout -1s is negative"},
		{func(r *jobs.JobRequest) { r.Coscheduling = &jobs.Coscheduling{} }, "GroupBy"},
		{func(r *jobs.JobRequest) { r.Environment.EnvFromWorker = []string{"A=B"} }, `env_from_worker name "A=B"`},
		{func(r *jobs.JobRequest) {
			r.Environment.EnvVars = map[string]string{"TOKEN": "x"}
			r.Environment.EnvFromWorker = []string{"TOKEN"}
		}, "TOKEN is both in env_vars and in env_from_worker"},
	}
	for _, c := range cases {
		r := ok
		r.Entrypoint = jobs.Command("python", "train.py")
		c.mut(&r)
		err := r.Validate()
		if !errors.Is(err, jobs.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want error containing %q, got %v", c.want, err)
		}
	}
}

func TestJobIDsAreHierarchical(t *testing.T) {
	ns, name, parent, err := jobs.ParseID("/ns/train/eval.1")
	if err != nil || ns != "ns" || name != "eval.1" || parent != "/ns/train" {
		t.Fatalf("%q %q %q %v", ns, name, parent, err)
	}
	if _, _, _, err := jobs.ParseID("ns/train"); err == nil {
		t.Fatal("id without leading / accepted")
	}
	if tok := jobwire.Token("/ns/llama-3.1"); tok != "ns/llama-3=1" || jobwire.IDFromToken(tok) != "/ns/llama-3.1" {
		t.Fatalf("token %q", tok)
	}
}

func TestTerminalStatesAreFinal(t *testing.T) {
	all := []jobs.JobStatus{jobs.StatusPending, jobs.StatusRunning, jobs.StatusSucceeded, jobs.StatusFailed, jobs.StatusStopped}
	for _, from := range all {
		for _, to := range all {
			got := jobs.CanTransition(from, to)
			want := !from.Terminal() || from == to
			if got != want {
				t.Errorf("%s → %s: %v, want %v", from, to, got, want)
			}
		}
	}
	r := &jobs.Record{ID: "/a/b", Status: jobs.StatusRunning, Tasks: jobs.NewTasks(2)}
	if err := r.Finish(jobs.StatusSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	if err := r.Finish(jobs.StatusFailed, "late"); !errors.Is(err, jobs.ErrTerminal) {
		t.Fatalf("refinish: %v", err)
	}
}

func TestSchedulingTimeoutIsEncodedLikeTimeoutAndOmittedWhenZero(t *testing.T) {
	req := jobs.JobRequest{Name: "j", Entrypoint: jobs.Command("true"), Timeout: 90 * time.Second, SchedulingTimeout: 90 * time.Second}
	b, err := objects.Marshal(&req)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := objects.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["scheduling_timeout_ms"] == nil || m["scheduling_timeout_ms"] != m["timeout_ms"] {
		t.Fatalf("scheduling_timeout_ms %v (%T), timeout_ms %v (%T): want the same encoding", m["scheduling_timeout_ms"], m["scheduling_timeout_ms"], m["timeout_ms"], m["timeout_ms"])
	}
	var back jobs.JobRequest
	if err := objects.Unmarshal(b, &back); err != nil || back.SchedulingTimeout != 90*time.Second {
		t.Fatalf("decoded %s, %v", back.SchedulingTimeout, err)
	}
	req.SchedulingTimeout = 0
	b, _ = objects.Marshal(&req)
	m = nil
	_ = objects.Unmarshal(b, &m)
	if _, ok := m["scheduling_timeout_ms"]; ok {
		t.Fatal("a zero scheduling timeout is encoded")
	}
}

func TestAJobWaitsToBePlacedSinceItsSubmissionThenSinceItsLastGangRestart(t *testing.T) {
	r := &jobs.Record{SubmittedMS: 1000, Tasks: jobs.NewTasks(2)}
	if got := r.PendingSinceMS(); got != 1000 {
		t.Fatalf("never placed: %d, want the submission 1000", got)
	}
	// Attempt 0 ran from 2000; a restart at 5000 stopped replica 0, and
	// replica 1 had failed at 4000.
	r.Attempt, r.StartedMS = 1, 2000
	r.Tasks[0].Attempts = []jobs.TaskAttempt{{Attempt: 0, State: jobs.TaskStopped, StartMS: 2000, EndMS: 5000}}
	r.Tasks[1].Attempts = []jobs.TaskAttempt{{Attempt: 0, State: jobs.TaskFailed, StartMS: 2000, EndMS: 4000}}
	if got := r.PendingSinceMS(); got != 5000 {
		t.Fatalf("after a gang restart: %d, want the restart 5000", got)
	}
}
