package ray

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strings"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/jobs"
)

// Metadata keys fray sets on every Ray job it submits.
const (
	MetaJobID     = "fray_job_id"
	MetaJobName   = "fray_job_name"
	MetaNamespace = "fray_namespace"
	MetaRun       = "fray_run"
	// MetaRequest holds the fray request as JSON (dispatcher.EncodeRequest).
	MetaRequest = "fray_request"
)

// submitRequest is the body of POST /api/jobs/ (Ray's JobSubmitRequest).
type submitRequest struct {
	Entrypoint          string             `json:"entrypoint"`
	SubmissionID        string             `json:"submission_id"`
	RuntimeEnv          *runtimeEnv        `json:"runtime_env,omitempty"`
	Metadata            map[string]string  `json:"metadata,omitempty"`
	EntrypointNumCPUs   *float64           `json:"entrypoint_num_cpus,omitempty"`
	EntrypointNumGPUs   *float64           `json:"entrypoint_num_gpus,omitempty"`
	EntrypointMemory    *int64             `json:"entrypoint_memory,omitempty"`
	EntrypointResources map[string]float64 `json:"entrypoint_resources,omitempty"`
}

type runtimeEnv struct {
	EnvVars    map[string]string `json:"env_vars,omitempty"`
	Pip        []string          `json:"pip,omitempty"`
	WorkingDir string            `json:"working_dir,omitempty"`
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: ray: "+format, append([]any{dispatcher.ErrUnsupported}, args...)...)
}

// Validate refuses, wrapping dispatcher.ErrUnsupported, what a Ray job cannot
// honour. A Ray job is one entrypoint process: the only multi-replica request
// it accepts is one TPU slice coscheduled by "tpu-name", whose entrypoint runs
// on the slice's head host (Ray's TPU-<type>-head resource) and fans out from
// there.
func (b *Backend) Validate(req *jobs.JobRequest) error {
	_, err := b.translate("/validate/only", "", req)
	return err
}

// translate builds the Ray submission for run run of fray job jobID, or
// refuses req.
func (b *Backend) translate(jobID, run string, req *jobs.JobRequest) (*submitRequest, error) {
	if req == nil {
		return nil, fmt.Errorf("ray: nil job request")
	}
	ep := req.Entrypoint
	switch {
	case ep.Func != "":
		return nil, unsupported("Func entrypoints (%q) run only on fray workers; give an Argv command", ep.Func)
	case len(req.Environment.EnvFromWorker) > 0:
		return nil, unsupported("env_from_worker (%s) is filled in by fray workers; give the secret to the job another way", strings.Join(req.Environment.EnvFromWorker, ", "))
	case len(ep.Argv) == 0:
		return nil, fmt.Errorf("ray: job has no entrypoint: Argv is empty")
	}
	r := req.Resources
	dev := r.Device
	kind := strings.ToLower(dev.Kind)
	var tpu jobs.TPUType
	if kind == jobs.DeviceTPU {
		t, ok := jobs.LookupTPU(dev.Variant)
		if !ok {
			return nil, unsupported("unknown TPU type %q", dev.Variant)
		}
		tpu = t
	}
	replicas := max(req.Replicas, 1)
	oneSlice := kind == jobs.DeviceTPU && replicas == tpu.VMs && (req.Coscheduling == nil || req.Coscheduling.GroupBy == "tpu-name")
	switch {
	case replicas > 1 && req.Coscheduling != nil && !oneSlice:
		return nil, unsupported("replicas > 1 with coscheduling by %q: a Ray job runs one entrypoint (only one TPU slice coscheduled by tpu-name is accepted)", req.Coscheduling.GroupBy)
	case replicas > 1 && !oneSlice:
		return nil, unsupported("replicas = %d: a Ray job runs one entrypoint process; start the replicas from it as Ray tasks", replicas)
	case len(r.Regions) > 0:
		return nil, unsupported("regions %v: the Ray Jobs API cannot place a job by region", r.Regions)
	case r.Zone != "":
		return nil, unsupported("zone %q: the Ray Jobs API cannot place a job by zone", r.Zone)
	case len(req.Constraints) > 0:
		return nil, unsupported("attribute constraints (%s): the Ray Jobs API has no worker attributes", req.Constraints[0].Key)
	case r.Preemptible != nil && !*r.Preemptible:
		return nil, unsupported("preemptible=false: the Ray Jobs API cannot require a non-preemptible host")
	case len(r.DeviceAlternatives) > 0:
		return nil, unsupported("device alternatives %v: the Ray Jobs API takes one resource shape", r.DeviceAlternatives)
	case r.Disk != "":
		return nil, unsupported("disk %q: Ray has no disk resource", r.Disk)
	case r.Image != "" || req.Environment.DockerImage != "":
		return nil, unsupported("container images: fray submits Ray jobs without a container runtime_env")
	case len(req.Environment.Extras) > 0:
		return nil, unsupported("extras %v: give pip packages instead", req.Environment.Extras)
	case req.MaxRetriesFailure > 0:
		return nil, unsupported("max_retries_failure = %d: Ray runs a job once", req.MaxRetriesFailure)
	case req.MaxTaskFailures > 0:
		return nil, unsupported("max_task_failures = %d: a Ray job has one task", req.MaxTaskFailures)
	case req.Timeout > 0:
		return nil, unsupported("timeout %s: the Ray Jobs API has no job timeout", req.Timeout)
	case req.SchedulingTimeout > 0:
		return nil, unsupported("scheduling timeout %s: the Ray Jobs API has no scheduling timeout", req.SchedulingTimeout)
	}

	s := &submitRequest{
		Entrypoint:   entrypoint(req.Environment.SetupCommands, ep.Argv),
		SubmissionID: b.submissionID(jobID, run),
		Metadata:     map[string]string{MetaJobID: jobID},
	}
	if run != "" {
		s.Metadata[MetaRun] = run
	}
	if enc := dispatcher.EncodeRequest(req); enc != "" {
		s.Metadata[MetaRequest] = enc
	}
	if req.Name != "" {
		s.Metadata[MetaJobName] = req.Name
	}
	if b.ns != "" {
		s.Metadata[MetaNamespace] = b.ns
	}
	// A Ray job is one entrypoint process run once: task 0 of 1, attempt 0.
	env := req.Environment
	vars := dispatcher.JobEnv(jobID, req, map[string]string{
		jobs.EnvTaskIndex:   "0",
		jobs.EnvNumTasks:    "1",
		jobs.EnvAttempt:     "0",
		jobs.EnvClusterSpec: b.spec,
	})
	s.RuntimeEnv = &runtimeEnv{EnvVars: vars, Pip: env.PipPackages, WorkingDir: env.Workdir}
	if r.CPU < 0 || math.IsNaN(r.CPU) || math.IsInf(r.CPU, 0) {
		return nil, fmt.Errorf("ray: cpu %v: want a non-negative number", r.CPU)
	}
	if r.CPU > 0 {
		s.EntrypointNumCPUs = ptr(r.CPU)
	}
	if r.RAM != "" {
		n, err := jobs.ParseBytes(r.RAM)
		if err != nil {
			return nil, fmt.Errorf("ray: ram: %w", err)
		}
		if n > 0 {
			s.EntrypointMemory = ptr(n)
		}
	}
	switch kind {
	case "", jobs.DeviceCPU:
	case jobs.DeviceGPU:
		if dev.Count < 1 {
			return nil, fmt.Errorf("ray: gpu count %d: want at least 1", dev.Count)
		}
		s.EntrypointNumGPUs = ptr(float64(dev.Count))
		if v := strings.TrimSpace(dev.Variant); v != "" && !strings.EqualFold(v, "auto") {
			// Ray labels a GPU node with the resource accelerator_type:<type>
			// and its own requests ask for a sliver of it.
			s.EntrypointResources = map[string]float64{"accelerator_type:" + strings.ToUpper(v): 0.001}
		}
	case jobs.DeviceTPU:
		chips := dev.Count
		if chips < 1 {
			chips = tpu.ChipsPerVM()
		}
		s.EntrypointResources = map[string]float64{
			"TPU": float64(chips),
			// Worker 0 of a slice carries TPU-<GCP accelerator type>-head.
			"TPU-" + gcpAcceleratorType(tpu.Variant) + "-head": 1,
		}
	default:
		return nil, unsupported("device kind %q", dev.Kind)
	}
	return s, nil
}

// gcpAcceleratorType is the name GCP (and so Ray's TPU-<type>-head resource)
// gives a slice type: v5e slices are "v5litepod-N"; others keep fray's name.
func gcpAcceleratorType(variant string) string {
	if n, ok := strings.CutPrefix(variant, "v5e-"); ok {
		return "v5litepod-" + n
	}
	return variant
}

// entrypoint is the shell command Ray runs: setup commands (verbatim shell)
// joined with &&, then the argv with every argument shell-quoted.
func entrypoint(setup, argv []string) string {
	cmd := make([]string, len(argv))
	for i, a := range argv {
		cmd[i] = shellQuote(a)
	}
	parts := append(append([]string(nil), setup...), strings.Join(cmd, " "))
	return strings.Join(parts, " && ")
}

// shellQuote quotes s for a POSIX shell: safe words stay bare, anything else
// is put in single quotes, each embedded single quote written as quote,
// backslash, quote, quote (close, escaped quote, reopen).
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("@%+=:,./_-", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// submissionID derives Ray's submission id from the fray job id: readable
// ("fray-<ns>-team-train-"), restricted to [A-Za-z0-9_.-] so it is safe in
// Ray's URLs and log file names, and suffixed with a hash of the namespace
// and the exact id so that different ids never collide. The run is hashed in
// too: each new run of a job name is a new Ray job (Ray keeps finished jobs
// under their ids), while resubmitting one run finds the same id.
func (b *Backend) submissionID(jobID, run string) string {
	var sb strings.Builder
	sb.WriteString("fray-")
	if b.ns != "" {
		sb.WriteString(sanitize(b.ns))
		sb.WriteString("-")
	}
	name := sanitize(strings.Trim(jobID, "/"))
	if len(name) > 80 {
		name = name[:80]
	}
	sb.WriteString(name)
	key := b.ns + "\x00" + jobID
	if run != "" {
		key += "\x00" + run
	}
	sum := sha256.Sum256([]byte(key))
	sb.WriteString("-")
	sb.WriteString(hex.EncodeToString(sum[:])[:10])
	return sb.String()
}

func sanitize(s string) string {
	return strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.':
			return c
		}
		return '-'
	}, s)
}

func ptr[T any](v T) *T { return &v }
