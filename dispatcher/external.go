package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/frayhq/fray/jobs"
)

// StatusGiveUp is how long an external job's status may fail to be read
// before the job is recorded FAILED.
const StatusGiveUp = 10 * time.Minute

// NotFoundGiveUp is how many status polls in a row may find the job unknown
// to its backend (a Ray head restarted without its job table, a job deleted
// by hand) before the job is recorded FAILED: such a job never comes back.
const NotFoundGiveUp = 3

// ErrJobNotFound is matched (errors.Is) by a backend's error for a job it
// does not know.
var ErrJobNotFound = errors.New("dispatcher: job not found on its backend")

// terminalTask is the task state of a job that ended with s.
func terminalTask(s jobs.JobStatus) jobs.TaskStatus {
	switch s {
	case jobs.StatusSucceeded:
		return jobs.TaskSucceeded
	case jobs.StatusFailed:
		return jobs.TaskFailed
	}
	return jobs.TaskStopped
}

// startMirror starts, once per job, the goroutine that submits an external
// job to its backend and mirrors its status and logs into JetStream.
func (d *Dispatcher) startMirror(ctx context.Context, id string) {
	if d.mirrors[id] != nil {
		return
	}
	e := d.recs[id]
	if e == nil || e.r.Status.Terminal() {
		return
	}
	b := d.backends[e.r.Backend]
	if b == nil {
		d.finish(ctx, id, jobs.StatusFailed, fmt.Sprintf("backend %q is not configured on this dispatcher", e.r.Backend))
		return
	}
	mctx, cancel := context.WithCancel(ctx)
	d.mirrors[id] = cancel
	go d.mirror(mctx, b, id)
}

// stopExternal asks the backend to stop a job, in the background.
func (d *Dispatcher) stopExternal(r *jobs.Record) {
	b := d.backends[r.Backend]
	if b == nil || r.ExternalID == "" {
		return
	}
	ext, id := r.ExternalID, r.ID
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.Stop(ctx, ext); err != nil {
			d.log.Warn("stop external job", "job", id, "backend", b.Name(), "err", err)
		}
	}()
}

// mirror runs one external job: submit (idempotent by fray job id), then
// poll status and logs until the job finishes or ctx ends. It writes the
// record only with compare-and-set, so it never overrides a stop.
func (d *Dispatcher) mirror(ctx context.Context, b Backend, id string) {
	log := d.log.With("job", id, "backend", b.Name())
	r, _, err := d.store.Get(ctx, id)
	if err != nil || r.Status.Terminal() {
		return
	}
	fail := func(msg string) {
		_, _, err := d.store.Update(ctx, id, func(r *jobs.Record) error {
			if r.Status.Terminal() {
				return jobs.ErrNoChange
			}
			return r.Finish(jobs.StatusFailed, msg)
		})
		if err != nil && ctx.Err() == nil {
			log.Error("record external failure", "err", err)
		}
	}
	if r.ExternalID == "" {
		// A stop cancels ctx; the submission and the record of its id must
		// still complete, or the backend's job is orphaned (never stopped).
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		ext, err := b.Submit(sctx, id, r.Run, &r.Request)
		if err != nil {
			if ctx.Err() == nil {
				fail(fmt.Sprintf("submit to %s: %v", b.Name(), err))
			}
			return
		}
		r, _, err = d.store.Update(sctx, id, func(r *jobs.Record) error {
			r.ExternalID = ext
			if !r.Status.Terminal() {
				r.PendingReason = "submitted to " + b.Name() + " as " + ext
			}
			return nil
		})
		if err != nil {
			log.Error("record external id", "err", err)
			return
		}
		if r.Status == jobs.StatusStopped {
			d.stopExternal(r)
			return
		}
	}
	ext := r.ExternalID
	lw := jobs.NewLogWriter(d.js, id, 0, 0)
	lw.Dedup(r.Run)
	lw.SetNext(r.LogLines)
	cursor := r.LogCursor
	var failingSince time.Time // status polls failing since then
	notFound := 0              // status polls in a row that found no such job
	t := time.NewTicker(d.o.PollInterval)
	defer t.Stop()
	for {
		// Logs first, so a finished job's record is written after its last
		// lines are in FRAY_LOGS.
		lines, next, lerr := b.Logs(ctx, ext, cursor)
		if lerr == nil && (len(lines) > 0 || next != cursor) {
			for _, l := range lines {
				if err := lw.Line(ctx, l); err != nil {
					lerr = err
				}
			}
			if err := lw.Flush(ctx); err != nil {
				lerr = err
			}
			if lerr == nil {
				cursor = next
			}
		}
		if lerr != nil && ctx.Err() == nil {
			log.Warn("mirror logs", "err", lerr)
		}
		st, serr := b.Status(ctx, ext)
		if serr != nil && errors.Is(serr, ErrJobNotFound) {
			notFound++
		} else {
			notFound = 0
		}
		switch {
		case serr == nil:
			failingSince = time.Time{}
		case ctx.Err() != nil:
		case notFound >= NotFoundGiveUp:
			fail(fmt.Sprintf("%s no longer knows job %s (its head restarted without its job table, or the job was deleted): %v", b.Name(), ext, serr))
			return
		case failingSince.IsZero():
			failingSince = time.Now()
			log.Warn("poll status", "err", serr)
		case time.Since(failingSince) > StatusGiveUp:
			fail(fmt.Sprintf("lost contact with %s for %s: %v", b.Name(), StatusGiveUp, serr))
			return
		}
		var done bool
		_, _, err := d.store.Update(ctx, id, func(r *jobs.Record) error {
			done = r.Status.Terminal()
			if done {
				return jobs.ErrNoChange
			}
			changed := r.LogCursor != cursor
			r.LogCursor, r.LogLines = cursor, lw.Next()
			if serr != nil {
				if !changed {
					return jobs.ErrNoChange
				}
				return nil
			}
			switch s := st.State; {
			case s.Terminal():
				done = true
				msg := st.Message
				if s == jobs.StatusSucceeded {
					msg = "" // a backend's "finished successfully" is no error
				}
				if err := r.Finish(s, msg); err != nil {
					return err
				}
				if s != jobs.StatusStopped {
					for i := range r.Tasks {
						r.Tasks[i].State = terminalTask(s)
					}
				}
				return nil
			case s == jobs.StatusRunning && r.Status != jobs.StatusRunning:
				r.Status = jobs.StatusRunning
				r.StartedMS = jobs.NowMS()
				r.PendingReason = ""
				for i := range r.Tasks {
					r.Tasks[i].State = jobs.TaskRunning
				}
			case s == jobs.StatusPending && st.Message != "" && r.PendingReason != st.Message:
				r.PendingReason = st.Message
			default:
				if !changed {
					return jobs.ErrNoChange
				}
			}
			return nil
		})
		if err != nil && ctx.Err() == nil {
			log.Warn("record external status", "err", err)
		}
		if done || ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
