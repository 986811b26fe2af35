package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
)

// backendFor names the backend that runs req, or returns why none does.
func (d *Dispatcher) backendFor(req *jobs.JobRequest) (string, error) {
	name := req.Resources.TargetCluster
	if name == "" {
		name = d.o.DefaultBackend
	}
	if name == BackendNative || d.backends[name] != nil {
		return name, nil
	}
	return name, fmt.Errorf("%w: target cluster %q is not configured on the dispatcher (configured: %s)", ErrUnsupported, name, strings.Join(backendNames(d.backends), ", "))
}

// validateNative refuses what fray's own runner cannot honour.
func validateNative(req *jobs.JobRequest) error {
	var errs []error
	env := req.Environment
	if len(env.PipPackages) > 0 {
		errs = append(errs, fmt.Errorf("%w: native: pip packages %v cannot be installed by fray workers; install them on the hosts or use SetupCommands", ErrUnsupported, env.PipPackages))
	}
	if len(env.Extras) > 0 {
		errs = append(errs, fmt.Errorf("%w: native: extras %v are not supported", ErrUnsupported, env.Extras))
	}
	if env.DockerImage != "" || req.Resources.Image != "" {
		errs = append(errs, fmt.Errorf("%w: native: fray workers run processes on the host, not container images", ErrUnsupported))
	}
	return errors.Join(errs...)
}

// validate checks req against the backend that will run it.
func (d *Dispatcher) validate(name string, req *jobs.JobRequest) error {
	if name == BackendNative {
		return validateNative(req)
	}
	if err := d.backends[name].Validate(req); err != nil {
		if !errors.Is(err, ErrUnsupported) {
			err = fmt.Errorf("%w: %s: %v", ErrUnsupported, name, err)
		}
		return err
	}
	return nil
}

// onSubmit creates (or adopts) a job from a client's SubmitRequest, replies,
// and places it at once.
func (d *Dispatcher) onSubmit(ctx context.Context, m *nats.Msg) {
	var sr jobs.SubmitRequest
	if err := objects.Unmarshal(m.Data, &sr); err != nil {
		reply(m, &jobs.SubmitReply{Code: jobwire.CodeInvalid, Error: "malformed submit request: " + err.Error()})
		return
	}
	req := sr.Request
	req.Normalize()
	err := req.Validate()
	if err == nil {
		_, name, parent, perr := jobs.ParseID(sr.ID)
		switch {
		case perr != nil:
			err = perr
		case name != req.Name:
			err = fmt.Errorf("%w: job id %s does not end in the name %q", jobs.ErrInvalid, sr.ID, req.Name)
		case parent != sr.Parent:
			err = fmt.Errorf("%w: job id %s is not a child of %q", jobs.ErrInvalid, sr.ID, sr.Parent)
		}
	}
	if err != nil {
		reply(m, &jobs.SubmitReply{Code: jobwire.CodeInvalid, Error: err.Error()})
		return
	}
	rec := jobs.NewRecord(sr.ID, sr.Parent, &req)
	rec.PendingReason = "queued"
	name, berr := d.backendFor(&req)
	rec.Backend = name
	if berr == nil {
		berr = d.validate(name, &req)
	}
	if berr != nil {
		rec.Status = jobs.StatusFailed
		rec.Error = berr.Error()
		rec.PendingReason = ""
		rec.FinishedMS = rec.SubmittedMS
		for i := range rec.Tasks {
			rec.Tasks[i].State = jobs.TaskStopped
		}
	}
	out, rev, adopted, err := d.store.CreateOrAdopt(ctx, rec, req.Adopt())
	var ae *jobs.AlreadyExistsError
	switch {
	case errors.As(err, &ae):
		reply(m, &jobs.SubmitReply{Code: jobwire.CodeExists, Record: out, Error: ae.Error()})
		return
	case err != nil:
		reply(m, &jobs.SubmitReply{Code: jobwire.CodeInternal, Error: err.Error()})
		return
	}
	if cur := d.recs[sr.ID]; cur == nil || cur.rev < rev {
		d.recs[sr.ID] = &recEntry{out, rev}
	}
	if adopted {
		reply(m, &jobs.SubmitReply{Record: out, Adopted: true})
		if out.Backend != BackendNative {
			d.startMirror(ctx, sr.ID) // a live job found on its backend
		}
		return
	}
	if berr != nil {
		d.log.Info("job rejected", "job", sr.ID, "backend", name, "err", berr)
		reply(m, &jobs.SubmitReply{Code: jobwire.CodeRejected, Record: out, Error: berr.Error()})
		return
	}
	reply(m, &jobs.SubmitReply{Record: out})
	d.log.Debug("job submitted", "job", sr.ID, "backend", name)
	if name == BackendNative {
		d.placeOne(ctx, sr.ID)
	} else {
		d.startMirror(ctx, sr.ID)
	}
}
