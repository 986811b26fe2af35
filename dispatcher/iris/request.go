package iris

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/dispatcher/iris/internal/iris/clusterpb"
	"github.com/frayhq/fray/dispatcher/iris/internal/iris/jobpb"
	"github.com/frayhq/fray/dispatcher/iris/internal/iris/timepb"
	"github.com/frayhq/fray/jobs"
)

// Iris's well-known worker attribute keys.
const (
	attrPreemptible   = "preemptible"
	attrRegion        = "region"
	attrZone          = "zone"
	attrDeviceVariant = "device-variant"
)

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: iris: "+format, append([]any{dispatcher.ErrUnsupported}, args...)...)
}

// Validate refuses, wrapping dispatcher.ErrUnsupported, what Iris cannot
// honour: Func entrypoints (they exist only in fray worker binaries) and
// container images (Iris picks the task image itself).
func (b *Backend) Validate(req *jobs.JobRequest) error {
	_, err := b.launchRequest("/validate/only", req)
	return err
}

// launchRequest translates req into Iris's LaunchJobRequest.
func (b *Backend) launchRequest(jobID string, req *jobs.JobRequest) (*clusterpb.Controller_LaunchJobRequest, error) {
	if req == nil {
		return nil, fmt.Errorf("iris: nil job request")
	}
	ep := req.Entrypoint
	switch {
	case ep.Func != "":
		return nil, unsupported("Func entrypoints (%q) run only on fray workers; give an Argv command", ep.Func)
	case len(req.Environment.EnvFromWorker) > 0:
		return nil, unsupported("env_from_worker (%s) is filled in by fray workers; give the secret to the job another way", strings.Join(req.Environment.EnvFromWorker, ", "))
	case len(ep.Argv) == 0:
		return nil, fmt.Errorf("iris: job has no entrypoint: Argv is empty")
	case req.Resources.Image != "" || req.Environment.DockerImage != "":
		return nil, unsupported("container images: the Iris cluster chooses the task image")
	case len(req.Environment.PipPackages) > 0 || len(req.Environment.Extras) > 0:
		return nil, unsupported("pip packages and extras: Iris resolves them client-side into setup scripts; give setup commands")
	case req.Environment.Workdir != "":
		return nil, unsupported("workdir %q: Iris runs a task in its own bundle directory", req.Environment.Workdir)
	case req.Coscheduling != nil && strings.TrimSpace(req.Coscheduling.GroupBy) == "":
		return nil, fmt.Errorf("iris: coscheduling needs a group_by attribute")
	}
	name, err := b.wireName(jobID)
	if err != nil {
		return nil, err
	}
	res, err := resources(req.Resources)
	if err != nil {
		return nil, err
	}
	cons, err := constraints(req)
	if err != nil {
		return nil, err
	}
	lr := &clusterpb.Controller_LaunchJobRequest{
		Name: name,
		Entrypoint: &jobpb.RuntimeEntrypoint{
			SetupCommands: req.Environment.SetupCommands,
			RunCommand:    &jobpb.CommandEntrypoint{Argv: ep.Argv},
		},
		Resources:            res,
		Environment:          &jobpb.EnvironmentConfig{EnvVars: jobEnv(b.spec, jobID, req)},
		MaxTaskFailures:      int32(taskFailureBudget(req)),
		MaxRetriesFailure:    int32(req.MaxRetriesFailure),
		MaxRetriesPreemption: 100,
		Constraints:          cons,
		Replicas:             int32(max(req.Replicas, 1)),
		ExistingJobPolicy:    jobpb.ExistingJobPolicy_EXISTING_JOB_POLICY_KEEP,
		ClientRevisionDate:   b.now().UTC().Format("2006-01-02"),
	}
	if req.MaxRetriesPreemption != nil {
		lr.MaxRetriesPreemption = int32(*req.MaxRetriesPreemption)
	}
	if req.AdoptExisting != nil && !*req.AdoptExisting {
		lr.ExistingJobPolicy = jobpb.ExistingJobPolicy_EXISTING_JOB_POLICY_ERROR
	}
	if req.Coscheduling != nil {
		lr.Coscheduling = &jobpb.CoschedulingConfig{GroupBy: req.Coscheduling.GroupBy}
	}
	if req.Timeout > 0 {
		lr.Timeout = &timepb.Duration{Milliseconds: req.Timeout.Milliseconds()}
	}
	if req.SchedulingTimeout > 0 {
		lr.SchedulingTimeout = &timepb.Duration{Milliseconds: req.SchedulingTimeout.Milliseconds()}
	}
	return lr, nil
}

// jobEnv is the environment of every task of the job: the request's
// env_vars, then FRAY_JOB_ID, FRAY_NAMESPACE, FRAY_NUM_TASKS (the replica
// count), FRAY_CLUSTER_SPEC when configured, and FRAY_TASK_INDEX = 0 for a
// single-replica job. Iris gives every replica one environment, so a gang's
// replicas get no FRAY_TASK_INDEX (Iris's IRIS_TASK_ID ends with it), and
// FRAY_JOB_ATTEMPT is never set (Iris retries a task itself).
func jobEnv(spec, jobID string, req *jobs.JobRequest) map[string]string {
	replicas := max(req.Replicas, 1)
	extra := map[string]string{
		jobs.EnvNumTasks:    strconv.Itoa(replicas),
		jobs.EnvClusterSpec: spec,
	}
	if replicas == 1 {
		extra[jobs.EnvTaskIndex] = "0"
	}
	return dispatcher.JobEnv(jobID, req, extra)
}

// taskFailureBudget is Iris's max_task_failures for req. Iris fails a job
// as soon as its failed task attempts, counted across retries, exceed
// max_task_failures, so with the default 0 a first failure ends the job and
// max_retries_failure never applies. Unless the request sets its own budget,
// fray allows MaxRetriesFailure failures, as Iris's own CLI does for
// --max-retries.
func taskFailureBudget(req *jobs.JobRequest) int {
	if req.MaxTaskFailures > 0 {
		return req.MaxTaskFailures
	}
	return max(req.MaxRetriesFailure, 0)
}

func resources(r jobs.ResourceConfig) (*jobpb.ResourceSpecProto, error) {
	if r.CPU < 0 || math.IsNaN(r.CPU) || r.CPU*1000 > math.MaxInt32 {
		return nil, fmt.Errorf("iris: cpu %v: want a non-negative number of cores", r.CPU)
	}
	out := &jobpb.ResourceSpecProto{CpuMillicores: int32(math.Round(r.CPU * 1000))}
	var err error
	if out.MemoryBytes, err = jobs.ParseBytes(r.RAM); err != nil {
		return nil, fmt.Errorf("iris: ram: %w", err)
	}
	if out.DiskBytes, err = jobs.ParseBytes(r.Disk); err != nil {
		return nil, fmt.Errorf("iris: disk: %w", err)
	}
	d := r.Device
	switch strings.ToLower(d.Kind) {
	case "", jobs.DeviceCPU:
		// No device: Iris treats a ResourceSpec without one as CPU-only.
	case jobs.DeviceGPU:
		if d.Count < 1 {
			return nil, fmt.Errorf("iris: gpu count %d: want at least 1", d.Count)
		}
		out.Device = &jobpb.DeviceConfig{Device: &jobpb.DeviceConfig_Gpu{Gpu: &jobpb.GpuDevice{Variant: d.Variant, Count: int32(d.Count)}}}
	case jobs.DeviceTPU:
		t, ok := jobs.LookupTPU(d.Variant)
		if !ok {
			return nil, unsupported("unknown TPU type %q", d.Variant)
		}
		count, topo := d.Count, d.Topology
		if count < 1 {
			count = t.ChipsPerVM()
		}
		if topo == "" {
			topo = t.Topology
		}
		out.Device = &jobpb.DeviceConfig{Device: &jobpb.DeviceConfig_Tpu{Tpu: &jobpb.TpuDevice{
			Variant: tpuVariant(t.Variant), Topology: topo, Count: int32(count),
		}}}
	default:
		return nil, unsupported("device kind %q", d.Kind)
	}
	return out, nil
}

// tpuVariant is Iris's (GCP's) name for a slice type: v5e is "v5litepod-N".
func tpuVariant(v string) string {
	if n, ok := strings.CutPrefix(v, "v5e-"); ok {
		return "v5litepod-" + n
	}
	return v
}

func str(s string) *jobpb.AttributeValue {
	// Iris normalises string attribute values to trimmed lower case.
	return &jobpb.AttributeValue{Value: &jobpb.AttributeValue_StringValue{StringValue: strings.ToLower(strings.TrimSpace(s))}}
}

func strs(ss []string) []*jobpb.AttributeValue {
	out := make([]*jobpb.AttributeValue, len(ss))
	for i, s := range ss {
		out[i] = str(s)
	}
	return out
}

// constraints builds Iris's placement constraints: preemptible=false is a
// hard "preemptible EQ false" (true, the default, allows any host); regions
// are EQ for one, IN for several, EXISTS for ["*"]; zone is EQ; device
// alternatives are "device-variant IN (variant, alternatives…)"; the
// request's own constraints map op for op.
func constraints(req *jobs.JobRequest) ([]*jobpb.Constraint, error) {
	r := req.Resources
	var out []*jobpb.Constraint
	if r.Preemptible != nil && !*r.Preemptible {
		out = append(out, &jobpb.Constraint{Key: attrPreemptible, Op: jobpb.ConstraintOp_CONSTRAINT_OP_EQ, Value: str("false")})
	}
	switch regions := r.Regions; {
	case len(regions) == 0:
	case len(regions) == 1 && regions[0] == "*":
		out = append(out, &jobpb.Constraint{Key: attrRegion, Op: jobpb.ConstraintOp_CONSTRAINT_OP_EXISTS})
	case len(regions) == 1:
		out = append(out, &jobpb.Constraint{Key: attrRegion, Op: jobpb.ConstraintOp_CONSTRAINT_OP_EQ, Value: str(regions[0])})
	default:
		for _, g := range regions {
			if g == "*" || strings.TrimSpace(g) == "" {
				return nil, fmt.Errorf("iris: regions %v: \"*\" (any) must stand alone and no region may be empty", regions)
			}
		}
		out = append(out, &jobpb.Constraint{Key: attrRegion, Op: jobpb.ConstraintOp_CONSTRAINT_OP_IN, Values: strs(regions)})
	}
	if r.Zone != "" {
		out = append(out, &jobpb.Constraint{Key: attrZone, Op: jobpb.ConstraintOp_CONSTRAINT_OP_EQ, Value: str(r.Zone)})
	}
	if len(r.DeviceAlternatives) > 0 {
		vs := []string{}
		if r.Device.Variant != "" {
			v := r.Device.Variant
			if strings.EqualFold(r.Device.Kind, jobs.DeviceTPU) {
				if t, ok := jobs.LookupTPU(v); ok {
					v = tpuVariant(t.Variant)
				}
			}
			vs = append(vs, v)
		}
		for _, a := range r.DeviceAlternatives {
			if t, ok := jobs.LookupTPU(a); ok && strings.EqualFold(r.Device.Kind, jobs.DeviceTPU) {
				a = tpuVariant(t.Variant)
			}
			vs = append(vs, a)
		}
		out = append(out, &jobpb.Constraint{Key: attrDeviceVariant, Op: jobpb.ConstraintOp_CONSTRAINT_OP_IN, Values: strs(vs)})
	}
	for _, c := range req.Constraints {
		pc := &jobpb.Constraint{Key: c.Key}
		switch strings.ToUpper(c.Op) {
		case jobs.OpEQ, jobs.OpNE:
			if len(c.Values) != 1 {
				return nil, fmt.Errorf("iris: constraint %s %s: want exactly one value, got %d", c.Key, c.Op, len(c.Values))
			}
			pc.Op = jobpb.ConstraintOp_CONSTRAINT_OP_EQ
			if strings.EqualFold(c.Op, jobs.OpNE) {
				pc.Op = jobpb.ConstraintOp_CONSTRAINT_OP_NE
			}
			pc.Value = str(c.Values[0])
		case jobs.OpIN:
			if len(c.Values) == 0 {
				return nil, fmt.Errorf("iris: constraint %s IN: want at least one value", c.Key)
			}
			pc.Op, pc.Values = jobpb.ConstraintOp_CONSTRAINT_OP_IN, strs(c.Values)
		case jobs.OpEXISTS:
			pc.Op = jobpb.ConstraintOp_CONSTRAINT_OP_EXISTS
		default:
			return nil, unsupported("constraint operator %q on %s", c.Op, c.Key)
		}
		out = append(out, pc)
	}
	return out, nil
}
