package jobs

import "time"

// JobRequest describes a job: what to run, on what, how often to retry.
// It is the same for every backend (native fray workers, Ray, Iris).
type JobRequest struct {
	V           int               `cbor:"v" json:"v"`
	Name        string            `cbor:"name" json:"name"`
	Entrypoint  Entrypoint        `cbor:"entrypoint" json:"entrypoint"`
	Resources   ResourceConfig    `cbor:"resources" json:"resources"`
	Environment EnvironmentConfig `cbor:"environment" json:"environment"`
	// Replicas is the number of tasks of the job, gang-scheduled (all or none).
	// Defaults to 1.
	Replicas int `cbor:"replicas,omitempty" json:"replicas,omitempty"`
	// MaxRetriesFailure is how many times a failed job (non-zero exit) is
	// rerun. Defaults to 0.
	MaxRetriesFailure int `cbor:"max_retries_failure,omitempty" json:"max_retries_failure,omitempty"`
	// MaxRetriesPreemption is how many times a job whose worker was lost or
	// drained is rerun. Nil means the default, 100.
	MaxRetriesPreemption *int `cbor:"max_retries_preemption,omitempty" json:"max_retries_preemption,omitempty"`
	// MaxTaskFailures is how many task failures the job tolerates before it
	// fails as a whole. Defaults to 0.
	MaxTaskFailures int `cbor:"max_task_failures,omitempty" json:"max_task_failures,omitempty"`
	// Timeout stops the job when it runs longer. Zero means no timeout.
	Timeout time.Duration `cbor:"timeout,omitempty" json:"timeout,omitempty"`
	// SchedulingTimeout fails the job when it waits PENDING, unplaced, this
	// long: counted from its submission, and afresh from each gang restart
	// (a preemption or a retry) while it waits to be placed again. The job
	// ends FAILED with an error that starts "unschedulable for" and carries
	// its last pending reason. Zero means wait forever. Enforced by the
	// dispatcher for jobs on fray workers and by Iris; Ray refuses it.
	SchedulingTimeout time.Duration `cbor:"scheduling_timeout,omitempty" json:"scheduling_timeout,omitempty"`
	Priority          int           `cbor:"priority,omitempty" json:"priority,omitempty"`
	// Coscheduling groups the replicas on workers sharing an attribute value.
	Coscheduling *Coscheduling `cbor:"coscheduling,omitempty" json:"coscheduling,omitempty"`
	Constraints  []Constraint  `cbor:"constraints,omitempty" json:"constraints,omitempty"`
	// AdoptExisting returns the live job of the same name instead of failing
	// with ErrAlreadyExists. Nil means the default, true.
	AdoptExisting *bool `cbor:"adopt_existing,omitempty" json:"adopt_existing,omitempty"`
}

// Entrypoint is either a command (Argv) or a function registered in the
// worker binary (Func with its CBOR-encoded Arg).
type Entrypoint struct {
	Argv []string `cbor:"argv,omitempty" json:"argv,omitempty"`
	Func string   `cbor:"func,omitempty" json:"func,omitempty"`
	Arg  []byte   `cbor:"arg,omitempty" json:"arg,omitempty"`
}

// Coscheduling places all replicas on workers that share the value of the
// GroupBy attribute, e.g. "tpu-name" for one TPU slice.
type Coscheduling struct {
	GroupBy string `cbor:"group_by" json:"group_by"`
}

// Constraint operators.
const (
	OpEQ     = "EQ"
	OpNE     = "NE"
	OpIN     = "IN"
	OpEXISTS = "EXISTS"
)

// Constraint restricts placement by a worker attribute.
type Constraint struct {
	Key    string   `cbor:"key" json:"key"`
	Op     string   `cbor:"op" json:"op"`
	Values []string `cbor:"values,omitempty" json:"values,omitempty"`
}

// Device kinds.
const (
	DeviceCPU = "cpu"
	DeviceGPU = "gpu"
	DeviceTPU = "tpu"
)

// DeviceConfig is the accelerator a replica needs. The zero value is CPU.
type DeviceConfig struct {
	Kind     string `cbor:"kind,omitempty" json:"kind,omitempty"`
	Variant  string `cbor:"variant,omitempty" json:"variant,omitempty"`
	Count    int    `cbor:"count,omitempty" json:"count,omitempty"`
	Topology string `cbor:"topology,omitempty" json:"topology,omitempty"`
}

// ResourceConfig is what each replica needs and where it may run.
type ResourceConfig struct {
	CPU    float64      `cbor:"cpu,omitempty" json:"cpu,omitempty"`
	RAM    string       `cbor:"ram,omitempty" json:"ram,omitempty"`
	Disk   string       `cbor:"disk,omitempty" json:"disk,omitempty"`
	Device DeviceConfig `cbor:"device" json:"device"`
	// Preemptible allows preemptible hosts. Nil means the default, true.
	Preemptible *bool `cbor:"preemptible,omitempty" json:"preemptible,omitempty"`
	// Regions: nil inherits, a list pins, ["*"] means any.
	Regions            []string `cbor:"regions,omitempty" json:"regions,omitempty"`
	Zone               string   `cbor:"zone,omitempty" json:"zone,omitempty"`
	TargetCluster      string   `cbor:"target_cluster,omitempty" json:"target_cluster,omitempty"`
	DeviceAlternatives []string `cbor:"device_alternatives,omitempty" json:"device_alternatives,omitempty"`
	Image              string   `cbor:"image,omitempty" json:"image,omitempty"`
}

// EnvironmentConfig is the environment a replica's process runs in.
type EnvironmentConfig struct {
	// EnvVars are stored in the job record: every worker and viewer of the
	// cluster (tenant) can read them. Give secrets through EnvFromWorker.
	EnvVars map[string]string `cbor:"env_vars,omitempty" json:"env_vars,omitempty"`
	// EnvFromWorker names variables the worker running each replica fills
	// in itself, from the file it was given for the name (fray-worker
	// --secret NAME=FILE, read at each start) or else from its own
	// environment: a secret reaches the job without being stored anywhere
	// in the cluster. A worker that has neither fails the attempt naming
	// the variable. Native backend only.
	EnvFromWorker []string `cbor:"env_from_worker,omitempty" json:"env_from_worker,omitempty"`
	Workdir       string   `cbor:"workdir,omitempty" json:"workdir,omitempty"`
	SetupCommands []string `cbor:"setup_commands,omitempty" json:"setup_commands,omitempty"`
	PipPackages   []string `cbor:"pip_packages,omitempty" json:"pip_packages,omitempty"`
	Extras        []string `cbor:"extras,omitempty" json:"extras,omitempty"`
	DockerImage   string   `cbor:"docker_image,omitempty" json:"docker_image,omitempty"`
}

// JobStatus is a job's state. Terminal states are final.
type JobStatus string

const (
	StatusPending   JobStatus = "PENDING"
	StatusRunning   JobStatus = "RUNNING"
	StatusSucceeded JobStatus = "SUCCEEDED"
	StatusFailed    JobStatus = "FAILED"
	StatusStopped   JobStatus = "STOPPED"
)

// Terminal reports whether s is final.
func (s JobStatus) Terminal() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusStopped
}
