package jobs

import (
	"errors"
	"fmt"
	"strings"

	"github.com/frayhq/fray/internal/jobwire"
)

// Default retry budgets.
const (
	DefaultMaxRetriesPreemption = 100
	DefaultMaxRetriesFailure    = 0
)

// Command is an entrypoint that runs argv as a process.
func Command(argv ...string) Entrypoint { return Entrypoint{Argv: argv} }

// Func is an entrypoint that calls the function registered as name in the
// worker binary (see RunnerOptions.Funcs) with arg, encoded with the fray
// codec by the caller (objects.Marshal) or raw bytes.
func Func(name string, arg []byte) Entrypoint { return Entrypoint{Func: name, Arg: arg} }

// PreemptionBudget is MaxRetriesPreemption with its default applied.
func (r *JobRequest) PreemptionBudget() int {
	if r.MaxRetriesPreemption == nil {
		return DefaultMaxRetriesPreemption
	}
	return *r.MaxRetriesPreemption
}

// Adopt is AdoptExisting with its default (true) applied.
func (r *JobRequest) Adopt() bool { return r.AdoptExisting == nil || *r.AdoptExisting }

// PreemptibleOK is Resources.Preemptible with its default (true) applied.
func (c *ResourceConfig) PreemptibleOK() bool { return c.Preemptible == nil || *c.Preemptible }

// NumReplicas is Replicas with its default (1) applied.
func (r *JobRequest) NumReplicas() int {
	if r.Replicas <= 0 {
		return 1
	}
	return r.Replicas
}

// Normalize fills defaults in place: version, replicas, device kind.
func (r *JobRequest) Normalize() {
	r.V = jobwire.RequestVersion
	if r.Replicas <= 0 {
		r.Replicas = 1
	}
	if r.Resources.Device.Kind == "" {
		r.Resources.Device.Kind = DeviceCPU
	}
	r.Resources.Device.Kind = strings.ToLower(r.Resources.Device.Kind)
}

// Validate returns every problem with r, joined, each wrapping ErrInvalid,
// or nil. It does not check what a particular backend can honour; the
// dispatcher does that at submit.
func (r *JobRequest) Validate() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...))
	}
	if err := ValidName("job name", r.Name); err != nil {
		errs = append(errs, err)
	}
	ep := r.Entrypoint
	switch {
	case len(ep.Argv) > 0 && ep.Func != "":
		bad("entrypoint has both a command and a function; use jobs.Command or jobs.Func")
	case len(ep.Argv) == 0 && ep.Func == "":
		bad("entrypoint is empty; use jobs.Command(argv...) or jobs.Func(name, arg)")
	case len(ep.Argv) > 0 && ep.Argv[0] == "":
		bad("entrypoint command is empty")
	}
	if r.Replicas < 0 {
		bad("replicas %d is negative", r.Replicas)
	}
	if r.MaxRetriesFailure < 0 {
		bad("max retries on failure %d is negative", r.MaxRetriesFailure)
	}
	if r.MaxRetriesPreemption != nil && *r.MaxRetriesPreemption < 0 {
		bad("max retries on preemption %d is negative", *r.MaxRetriesPreemption)
	}
	if r.MaxTaskFailures < 0 {
		bad("max task failures %d is negative", r.MaxTaskFailures)
	}
	if r.Timeout < 0 {
		bad("timeout %s is negative", r.Timeout)
	}
	if r.SchedulingTimeout < 0 {
		bad("scheduling timeout %s is negative (0 waits forever)", r.SchedulingTimeout)
	}
	res := r.Resources
	if res.CPU < 0 {
		bad("cpu %g is negative", res.CPU)
	}
	if _, err := ParseBytes(res.RAM); err != nil {
		errs = append(errs, fmt.Errorf("ram: %w", err))
	}
	if _, err := ParseBytes(res.Disk); err != nil {
		errs = append(errs, fmt.Errorf("disk: %w", err))
	}
	d := res.Device
	switch strings.ToLower(d.Kind) {
	case "", DeviceCPU:
		if d.Count != 0 || d.Variant != "" {
			bad("a cpu device takes no variant or count (use CPU for cores)")
		}
	case DeviceGPU:
		if d.Count < 1 {
			bad("gpu count %d: want at least 1", d.Count)
		}
	case DeviceTPU:
		t, ok := LookupTPU(d.Variant)
		if !ok {
			bad("unknown TPU type %q (known: %s)", d.Variant, strings.Join(TPUVariants(), ", "))
		} else if d.Topology != "" && d.Topology != t.Topology {
			bad("TPU %s has topology %s, not %s", t.Variant, t.Topology, d.Topology)
		}
		if d.Count < 0 {
			bad("tpu chip count %d is negative", d.Count)
		}
	default:
		bad("device kind %q: want cpu, gpu or tpu", d.Kind)
	}
	for _, reg := range res.Regions {
		if reg == "" {
			bad("empty region")
		}
		if reg == "*" && len(res.Regions) > 1 {
			bad(`regions ["*"] (any) cannot be combined with named regions`)
		}
	}
	if r.Coscheduling != nil && r.Coscheduling.GroupBy == "" {
		bad("coscheduling needs a GroupBy attribute (e.g. tpu-name)")
	}
	for _, c := range r.Constraints {
		if c.Key == "" {
			bad("constraint with an empty key")
		}
		switch c.Op {
		case OpEQ, OpNE:
			if len(c.Values) != 1 {
				bad("constraint %s %s wants exactly one value, got %d", c.Key, c.Op, len(c.Values))
			}
		case OpIN:
			if len(c.Values) == 0 {
				bad("constraint %s IN wants at least one value", c.Key)
			}
		case OpEXISTS:
			if len(c.Values) != 0 {
				bad("constraint %s EXISTS takes no values", c.Key)
			}
		default:
			bad("constraint %s: operator %q: want EQ, NE, IN or EXISTS", c.Key, c.Op)
		}
	}
	for k := range r.Environment.EnvVars {
		if k == "" || strings.ContainsAny(k, "= \x00") {
			bad("environment variable name %q is not valid", k)
		}
	}
	for _, k := range r.Environment.EnvFromWorker {
		if k == "" || strings.ContainsAny(k, "= \x00") {
			bad("env_from_worker name %q is not a valid environment variable name", k)
		}
		if _, both := r.Environment.EnvVars[k]; both {
			bad("%s is both in env_vars and in env_from_worker; give it one way", k)
		}
	}
	return errors.Join(errs...)
}
