package dispatcher

import (
	"context"
	"time"

	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
)

// stopResend is how often the mirror of a job whose stop was asked for
// asks its backend again while the backend still reports it live.
const stopResend = 10 * time.Second

// external reports whether r runs on an external backend.
func external(r *jobs.Record) bool { return r.Backend != "" && r.Backend != BackendNative }

// requestStop asks the backend of live external job id to stop it. The
// record keeps its status, with StopRequestedMS and StopReason set; its
// mirror records STOPPED once the backend reports the job finished, so a
// STOPPED job is one its backend says is gone. A job not handed to its
// backend yet is stopped by its mirror right after the hand-off; one with
// no mirror (its backend is not configured here) is STOPPED at once.
func (d *Dispatcher) requestStop(ctx context.Context, id, reason string) {
	r, err := d.mutate(ctx, id, func(r *jobs.Record) error {
		if r.Status.Terminal() || r.StopRequestedMS != 0 {
			return jobs.ErrNoChange
		}
		r.StopRequestedMS, r.StopReason = jobwire.NowMS(), reason
		return nil
	})
	if err != nil {
		d.log.Error("record stop request", "job", id, "err", err)
		return
	}
	if r.Status.Terminal() {
		return
	}
	if d.backends[r.Backend] == nil {
		d.finish(ctx, id, jobs.StatusStopped, reason)
		return
	}
	if d.mirrors[id] == nil {
		d.startMirror(ctx, id)
	}
	d.stopExternal(r)
}

// askStop asks the backend again to stop a job whose stop was asked for
// (the record's StopRequestedMS, read by record) while it still runs it:
// every stopResend, and at once for a stop asked for before this mirror
// started (a dispatcher restarted meanwhile; whoever asked for a recent
// stop asked the backend then).
func (m *mirror) askStop(ctx context.Context) {
	if m.stopAsked == 0 || !m.drainUntil.IsZero() {
		return
	}
	if m.stopSent.IsZero() {
		m.stopSent = time.UnixMilli(m.stopAsked)
	}
	if time.Since(m.stopSent) < stopResend {
		return
	}
	m.stopSent = time.Now()
	if err := m.b.Stop(ctx, m.ext); err != nil && ctx.Err() == nil {
		m.log.Warn("ask the backend to stop the job", "err", err)
	}
}
