package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
)

// findTimeout bounds one look-up of jobs on the backends.
const findTimeout = 40 * time.Second

// recordOf builds the record of a job found on a backend (not submitted by
// this dispatcher): its state, times, tasks and request as the backend
// reports them. The current attempts of a finished job are not Exited: its
// last lines are not stored yet.
func recordOf(backend string, rj *RemoteJob) (*jobs.Record, error) {
	_, name, parent, err := jobs.ParseID(rj.JobID)
	if err != nil {
		return nil, err
	}
	var req jobs.JobRequest
	if rj.Request != nil {
		req = *rj.Request
	}
	req.Name = name
	req.Normalize()
	r := jobs.NewRecord(rj.JobID, parent, &req)
	r.Run = rj.Run
	if r.Run == "" {
		r.Run = "backend:" + rj.ExternalID
	}
	r.Backend, r.ExternalID = backend, rj.ExternalID
	if rj.SubmittedMS > 0 {
		r.SubmittedMS = rj.SubmittedMS
	}
	st := rj.Status
	r.PendingReason = ""
	if st.State == jobs.StatusPending {
		r.PendingReason = st.Message
		if r.PendingReason == "" {
			r.PendingReason = "pending on " + backend
		}
		return r, nil
	}
	started := st.StartedMS
	if started == 0 && st.State == jobs.StatusRunning {
		started = jobwire.NowMS()
	}
	if started > 0 {
		r.Status, r.StartedMS = jobs.StatusRunning, started
		startAttempts(r, backend)
	}
	if !st.State.Terminal() {
		return r, nil
	}
	msg := st.Message
	if st.State == jobs.StatusSucceeded {
		msg = ""
	}
	if err := r.Finish(st.State, msg); err != nil {
		return nil, err
	}
	if st.FinishedMS > 0 && st.FinishedMS >= r.StartedMS {
		r.FinishedMS = st.FinishedMS
	}
	for i := range r.Tasks {
		t := &r.Tasks[i]
		t.State = terminalTask(st.State)
		if a := t.Current(); a != nil {
			a.State, a.EndMS = t.State, r.FinishedMS
		}
	}
	return r, nil
}

// logsStored reports whether every line of finished record r is in
// FRAY_LOGS: no current attempt that ran is still waiting to be Exited.
func logsStored(r *jobs.Record) bool {
	for i := range r.Tasks {
		if a := r.Tasks[i].Current(); a != nil && a.Attempt == r.Attempt && a.StartMS > 0 && !a.Exited {
			return false
		}
	}
	return true
}

// importJob records rj, found on backend b, in FRAY_JOB_STATE and returns
// the job's record. A record of the same run is kept as it is (its mirror
// keeps it current); so is a live record of another run (this dispatcher's
// own submission) and a finished one newer than rj. Otherwise rj's record
// replaces it, as a new run of the name would. With withLogs, the lines the
// job printed so far are copied into FRAY_LOGS (a finished job's attempts
// are then marked Exited) before it returns, and no mirror starts meanwhile.
func (d *Dispatcher) importJob(ctx context.Context, b Backend, rj *RemoteJob, withLogs bool) (*jobs.Record, error) {
	rec, err := recordOf(b.Name(), rj)
	if err != nil {
		return nil, err
	}
	old, _, err := d.store.Get(ctx, rec.ID)
	switch {
	case err == nil && old.Run == rec.Run:
		if withLogs && old.Status.Terminal() && !logsStored(old) {
			return d.storeLogs(ctx, b, old)
		}
		return old, nil
	case err == nil && (!old.Status.Terminal() || old.SubmittedMS > rec.SubmittedMS):
		return old, nil
	case err != nil && !errors.Is(err, jobs.ErrNotFound):
		return nil, err
	}
	if lf, ok := b.(LogFinder); ok && (withLogs || !rec.Status.Terminal()) {
		if rec.LogCursor, err = lf.LogStartOf(ctx, rj); err != nil {
			return nil, fmt.Errorf("find where the logs of %s start: %w", rec.ID, err)
		}
	}
	if withLogs {
		d.importing.Store(rec.ID, true) // no mirror pulls the lines meanwhile
		defer d.importing.Delete(rec.ID)
	}
	out, _, adopted, err := d.store.CreateOrAdopt(ctx, rec, true)
	if err != nil || adopted || !withLogs {
		return out, err
	}
	return d.storeLogs(ctx, b, out)
}

// storeLogs copies the lines job r printed so far from its backend into
// FRAY_LOGS and records the log cursor; a finished job's attempts are then
// marked Exited.
func (d *Dispatcher) storeLogs(ctx context.Context, b Backend, r *jobs.Record) (*jobs.Record, error) {
	lw := jobs.NewLogWriter(d.js, r.ID, 0, 0)
	lw.Dedup(r.Run)
	lw.SetNext(r.LogLines)
	cursor := r.LogCursor
	for {
		lines, next, err := b.Logs(ctx, r.ExternalID, cursor)
		if err != nil {
			return r, fmt.Errorf("logs of %s from %s: %w", r.ID, b.Name(), err)
		}
		for _, l := range lines {
			if err := lw.Line(ctx, l); err != nil {
				return r, err
			}
		}
		if len(lines) == 0 || next == cursor {
			break
		}
		cursor = next
	}
	if err := lw.Flush(ctx); err != nil {
		return r, err
	}
	out, _, err := d.store.Update(ctx, r.ID, func(x *jobs.Record) error {
		if x.Run != r.Run || x.LogLines != r.LogLines || x.Status.Terminal() && logsStored(x) {
			return jobs.ErrNoChange
		}
		x.LogCursor, x.LogLines = cursor, lw.Next()
		for i := range x.Tasks {
			if a := x.Tasks[i].Current(); a != nil && a.Attempt == x.Attempt && x.Status.Terminal() {
				a.Exited = true
			}
		}
		return nil
	})
	return out, err
}

// findOne looks job id up on every backend that can find jobs and records
// the first hit (nil when none has it).
func (d *Dispatcher) findOne(ctx context.Context, id string) (*jobs.Record, error) {
	var errs []error
	for _, b := range d.o.Backends {
		f, ok := b.(Finder)
		if !ok {
			continue
		}
		rj, err := f.Find(ctx, id)
		if errors.Is(err, ErrJobNotFound) {
			continue
		}
		if err == nil {
			var rec *jobs.Record
			if rec, err = d.importJob(ctx, b, rj, true); err == nil {
				return rec, nil
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", b.Name(), err))
	}
	return nil, errors.Join(errs...)
}

// findAll records every job of fray's the backends list (each job id's
// newest run), without their logs, and returns the live ones' ids.
func (d *Dispatcher) findAll(ctx context.Context) (found int, live []string, err error) {
	var errs []error
	for _, b := range d.o.Backends {
		list, err := b.List(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", b.Name(), err))
			continue
		}
		newest := map[string]*RemoteJob{}
		for i := range list {
			rj := &list[i]
			if rj.JobID == "" {
				continue
			}
			if cur := newest[rj.JobID]; cur == nil || rj.SubmittedMS > cur.SubmittedMS {
				newest[rj.JobID] = rj
			}
		}
		for _, rj := range newest {
			rec, err := d.importJob(ctx, b, rj, false)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: %w", b.Name(), rj.JobID, err))
				continue
			}
			found++
			if !rec.Status.Terminal() {
				live = append(live, rec.ID)
			}
		}
	}
	return found, live, errors.Join(errs...)
}

// onFind answers a FindRequest. It runs on the subscription's goroutine,
// not the loop: found live jobs are handed to the loop on found, which
// starts their mirrors.
func (d *Dispatcher) onFind(ctx context.Context, m *nats.Msg, found chan<- string) {
	var req jobwire.FindRequest
	rep := &jobs.FindReply{V: jobwire.WireVersion}
	answer := func() {
		if b, err := objects.Marshal(rep); err == nil {
			_ = m.Respond(b)
		}
	}
	if err := objects.Unmarshal(m.Data, &req); err != nil {
		rep.Code, rep.Error = jobwire.CodeInvalid, "malformed find request: "+err.Error()
		answer()
		return
	}
	fctx, cancel := context.WithTimeout(ctx, findTimeout)
	defer cancel()
	var live []string
	switch {
	case req.All:
		n, ids, err := d.findAll(fctx)
		rep.Found, live = n, ids
		if err != nil {
			rep.Code, rep.Error = jobwire.CodeInternal, err.Error()
		}
	default:
		if _, _, _, err := jobs.ParseID(req.ID); err != nil {
			rep.Code, rep.Error = jobwire.CodeInvalid, err.Error()
			break
		}
		rec, err := d.findOne(fctx, req.ID)
		if rec != nil {
			rep.Found, rep.Record = 1, rec
			if !rec.Status.Terminal() {
				live = append(live, rec.ID)
			}
			break
		}
		if r, _, gerr := d.store.Get(fctx, req.ID); gerr == nil {
			rep.Record = r // the backends do not have it, but this broker does
		} else if err != nil {
			rep.Code, rep.Error = jobwire.CodeInternal, err.Error()
		}
	}
	answer()
	for _, id := range live {
		select {
		case found <- id:
		case <-ctx.Done():
			return
		}
	}
}

// adoptLive looks the job of a submit request up on its backend before the
// loop handles the submit: a live job of that name there is recorded, so
// the submit adopts it (or reports it exists) instead of starting another
// run that would replace it. A backend that cannot be asked leaves the
// submit as it is.
func (d *Dispatcher) adoptLive(ctx context.Context, data []byte) {
	var sr jobs.SubmitRequest
	if objects.Unmarshal(data, &sr) != nil {
		return
	}
	name, err := d.backendFor(&sr.Request)
	if err != nil || name == BackendNative {
		return
	}
	f, ok := d.backends[name].(Finder)
	if !ok {
		return
	}
	if _, _, _, err := jobs.ParseID(sr.ID); err != nil {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, findTimeout)
	defer cancel()
	rj, err := f.Find(fctx, sr.ID)
	switch {
	case errors.Is(err, ErrJobNotFound):
	case err != nil:
		d.log.Warn("look the submitted job up on its backend", "job", sr.ID, "backend", name, "err", err)
	case !rj.Status.State.Terminal():
		if _, err := d.importJob(fctx, d.backends[name], rj, false); err != nil {
			d.log.Warn("record the live job found on the backend", "job", sr.ID, "backend", name, "err", err)
		}
	}
}

// onBackends answers a BackendsRequest.
func (d *Dispatcher) onBackends(m *nats.Msg) {
	rep := &jobs.BackendsReply{V: jobwire.WireVersion, Default: d.o.DefaultBackend,
		Backends: []jobs.BackendInfo{{Name: BackendNative, Kind: BackendNative}}}
	for _, b := range d.o.Backends {
		info := jobs.BackendInfo{Name: b.Name()}
		if l, ok := b.(Located); ok {
			info.Kind, info.Address = l.Kind(), l.Address()
		}
		rep.Backends = append(rep.Backends, info)
	}
	if b, err := objects.Marshal(rep); err == nil {
		_ = m.Respond(b)
	}
}

// onFound starts mirroring a live job a look-up recorded.
func (d *Dispatcher) onFound(ctx context.Context, id string) {
	if r, rev, err := d.store.Get(ctx, id); err == nil {
		if cur := d.recs[id]; cur == nil || cur.rev < rev {
			d.recs[id] = &recEntry{r, rev}
		}
	}
	d.startMirror(ctx, id)
}
