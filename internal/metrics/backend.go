package metrics

import (
	"context"
	"errors"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/jobs"
)

// WrapBackend returns be with every failed call counted in
// fray_dispatcher_backend_errors_total (a backend's answer that it does not
// know a job is not counted: that is an answer, not an error). A backend
// that tells where its logs start keeps doing so.
func (b *Broker) WrapBackend(be dispatcher.Backend) dispatcher.Backend {
	c := &countingBackend{Backend: be, b: b}
	if ls, ok := be.(dispatcher.LogStarter); ok {
		return &countingLogStarter{countingBackend: c, ls: ls}
	}
	return c
}

type countingBackend struct {
	dispatcher.Backend
	b *Broker
}

func (c *countingBackend) count(op string, err error) {
	if err != nil && !errors.Is(err, dispatcher.ErrJobNotFound) && !errors.Is(err, dispatcher.ErrUnsupported) && !errors.Is(err, context.Canceled) {
		c.b.backendErrors.WithLabelValues(c.Name(), op).Inc()
	}
}

func (c *countingBackend) Submit(ctx context.Context, jobID, run string, req *jobs.JobRequest) (string, error) {
	id, err := c.Backend.Submit(ctx, jobID, run, req)
	c.count("submit", err)
	return id, err
}

func (c *countingBackend) Status(ctx context.Context, externalID string) (dispatcher.RemoteStatus, error) {
	st, err := c.Backend.Status(ctx, externalID)
	c.count("status", err)
	return st, err
}

func (c *countingBackend) Logs(ctx context.Context, externalID string, cursor int64) ([]string, int64, error) {
	lines, next, err := c.Backend.Logs(ctx, externalID, cursor)
	c.count("logs", err)
	return lines, next, err
}

func (c *countingBackend) Stop(ctx context.Context, externalID string) error {
	err := c.Backend.Stop(ctx, externalID)
	c.count("stop", err)
	return err
}

func (c *countingBackend) List(ctx context.Context) ([]dispatcher.RemoteJob, error) {
	jobs, err := c.Backend.List(ctx)
	c.count("list", err)
	return jobs, err
}

type countingLogStarter struct {
	*countingBackend
	ls dispatcher.LogStarter
}

func (c *countingLogStarter) LogStart(ctx context.Context, jobID, run string) (int64, error) {
	n, err := c.ls.LogStart(ctx, jobID, run)
	c.count("log_start", err)
	return n, err
}
