package jobs

import (
	"fmt"

	"github.com/frayhq/fray/internal/jobwire"
)

// RequestOption adjusts a JobRequest at submit, so that a request reads as
// one expression: the literal with what needs no checking, the options
// with what does (a TPU type) or what a literal would need a pointer for.
// An option's error fails Submit, wrapping ErrInvalid.
//
//	h, err := c.Submit(ctx, jobs.JobRequest{
//		Name:       "train",
//		Entrypoint: jobs.Command("python", "train.py"),
//	}, jobs.TPU("v5e-16", 1), jobs.NotPreemptible(), jobs.MaxPreemptions(3))
type RequestOption func(*JobRequest) error

// TPU asks for slices TPU slices of variant (e.g. "v5e-16"), as
// JobRequest.WithTPU does: Replicas becomes slices × VMs per slice.
func TPU(variant string, slices int) RequestOption {
	return func(r *JobRequest) error { return r.WithTPU(variant, slices) }
}

// GPU asks for n GPUs of variant (e.g. "H100") per replica, as
// JobRequest.WithGPU does.
func GPU(variant string, n int) RequestOption {
	return func(r *JobRequest) error { return r.WithGPU(variant, n) }
}

// NotPreemptible keeps the job off preemptible hosts (Resources.Preemptible
// false): it needs workers with the attribute preemptible=false.
func NotPreemptible() RequestOption {
	return func(r *JobRequest) error { r.Resources.Preemptible = jobwire.Ptr(false); return nil }
}

// RefuseExisting makes Submit fail with *AlreadyExistsError when a live job
// of the same name exists, instead of adopting it (AdoptExisting false).
func RefuseExisting() RequestOption {
	return func(r *JobRequest) error { r.AdoptExisting = jobwire.Ptr(false); return nil }
}

// MaxPreemptions sets how many times the job is rerun after losing a
// worker (MaxRetriesPreemption; 0 fails it on the first loss).
func MaxPreemptions(n int) RequestOption {
	return func(r *JobRequest) error {
		if n < 0 {
			return fmt.Errorf("%w: MaxPreemptions(%d): want 0 or more", ErrInvalid, n)
		}
		r.MaxRetriesPreemption = jobwire.Ptr(n)
		return nil
	}
}

// apply runs opts on r.
func (r *JobRequest) apply(opts []RequestOption) error {
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(r); err != nil {
			return fmt.Errorf("jobs: request %q: %w", r.Name, err)
		}
	}
	return nil
}
