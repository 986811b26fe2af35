package fray

import (
	"context"

	"github.com/frayhq/fray/jobs"
)

// Jobs is the client's jobs sub-client: submit, list, stop and inspect
// jobs. It is built on first use, within ctx; a build that fails is tried
// again on the next call, and after Close it fails with ErrClientClosed.
func (c *Client) Jobs(ctx context.Context) (*jobs.Client, error) {
	return c.ext.jobs.get(ctx, func(ctx context.Context) (*jobs.Client, func() error, error) {
		jc, err := jobs.NewClient(ctx, c.NATS(), c.JetStream(), jobs.ClientOptions{Namespace: c.Namespace(), AskBackends: backendIsRecord(c.spec)})
		return jc, nil, err
	})
}

// Submit starts a job and returns its handle:
//
//	h, err := client.Submit(ctx, jobs.JobRequest{
//		Name:       "train",
//		Entrypoint: jobs.Command("python", "train.py"),
//		Resources:  jobs.ResourceConfig{CPU: 4, RAM: "16g"},
//	}, jobs.TPU("v5e-16", 1))
//	rec, err := h.Wait(ctx)
//
// opts adjust req before it is checked (jobs.TPU, jobs.GPU,
// jobs.NotPreemptible, jobs.RefuseExisting, jobs.MaxPreemptions). Inside a
// job (FRAY_JOB_ID set) the new job becomes its child. A live job of the
// same name is adopted unless req.AdoptExisting is false
// (jobs.RefuseExisting), which returns a *jobs.AlreadyExistsError carrying
// its handle. A request the
// target backend cannot honour returns an error wrapping jobs.ErrRejected.
func (c *Client) Submit(ctx context.Context, req jobs.JobRequest, opts ...jobs.RequestOption) (*jobs.Handle, error) {
	jc, err := c.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	return jc.Submit(ctx, req, opts...)
}

// ListJobs returns the jobs that pass filter (the zero Filter lists all),
// oldest first.
func (c *Client) ListJobs(ctx context.Context, filter jobs.Filter) ([]*jobs.Record, error) {
	jc, err := c.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	return jc.ListJobs(ctx, filter)
}

// Job returns a handle on the job with this id ("/ns/name") or name (in
// the client's namespace), or an error wrapping jobs.ErrInvalid when
// idOrName cannot name a job. It does not check that the job exists.
func (c *Client) Job(ctx context.Context, idOrName string) (*jobs.Handle, error) {
	if err := jobs.ValidRef(idOrName); err != nil {
		return nil, err
	}
	jc, err := c.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	return jc.Handle(jc.ResolveID(idOrName)), nil
}
