package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/frayhq/fray/internal/jobwire"
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

// LogStarter is implemented by a backend whose log lines outlive its jobs
// under the job's name (Iris's log server), so that a new run of a job name
// would see an earlier run's lines. Before a run's first Submit the
// dispatcher asks where the run's lines will start and stores that as the
// record's log cursor, so a dispatcher restarted at any point after the
// submission starts there too.
type LogStarter interface {
	// LogStart returns the log cursor after every line stored so far for
	// the name of job jobID, or 0 when the backend's job of that name
	// already belongs to run (a dispatcher submitted it, then restarted).
	LogStart(ctx context.Context, jobID, run string) (int64, error)
}

// maxUnreachableError bounds jobs.Record.UnreachableError.
const maxUnreachableError = 500

// DefaultStopWait is Options.StopWait's default.
const DefaultStopWait = 30 * time.Second

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
	if _, busy := d.importing.Load(id); d.mirrors[id] != nil || busy {
		return // mirrored, or being found (the finder starts it after)
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
	go func() {
		defer cancel()
		d.mirror(mctx, b, id)
	}()
}

// startAttempts gives each task of r an attempt on backend, RUNNING since
// r.StartedMS: it marks the job's run on the backend and is exited once its
// last lines are mirrored.
func startAttempts(r *jobs.Record, backend string) {
	for i := range r.Tasks {
		t := &r.Tasks[i]
		t.State = jobs.TaskRunning
		t.Attempts = append(t.Attempts, jobs.TaskAttempt{Attempt: r.Attempt, Worker: backend, State: jobs.TaskRunning, ExitCode: -1, StartMS: r.StartedMS})
		if len(t.Attempts) > jobwire.MaxAttemptsKept {
			t.Attempts = t.Attempts[len(t.Attempts)-jobwire.MaxAttemptsKept:]
		}
	}
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
//
// A stop does not end the record (see requestStop): the backend's report
// does. When the record ends on fray's side first all the same (written by
// another writer, e.g. a dispatcher of an older version), the mirror drains: it keeps mirroring logs until the backend
// reports the job finished or StopWait has passed since the record ended,
// fetches the logs a last time and then marks the current attempts exited,
// which tells followers (jobs.Handle.Follow) that every line is stored.
//
// A mirror is owned by its one goroutine (startMirror); none of its fields
// is shared.
type mirror struct {
	d   *Dispatcher
	b   Backend
	log *slog.Logger
	id  string
	run string // the run being mirrored; a record of another run is left alone
	ext string // the backend's id of the job, once submitted

	lw     *jobs.LogWriter
	cursor int64 // the backend's log cursor after the lines mirrored so far

	failingSince time.Time // status polls failing since then
	notFound     int       // status polls in a row that found no such job
	logsFailing  bool      // log fetches failing (warned once)
	drainUntil   time.Time // set once the record ended on fray's side
	stopAsked    int64     // the record's StopRequestedMS, as last read
	stopSent     time.Time // when the backend was last asked to stop the job
}

// mirror runs the mirror of job id on backend b until it ends or ctx does.
func (d *Dispatcher) mirror(ctx context.Context, b Backend, id string) {
	m := &mirror{d: d, b: b, id: id, log: d.log.With("job", id, "backend", b.Name())}
	r, _, err := d.store.Get(ctx, id)
	if err != nil || r.Status.Terminal() {
		return
	}
	m.run = r.Run
	if r.ExternalID == "" {
		if r = m.submit(ctx, r); r == nil {
			return
		}
	}
	m.follow(ctx, r)
}

// fail records the run FAILED with msg, unless it already ended.
func (m *mirror) fail(ctx context.Context, msg string) {
	_, _, err := m.d.store.Update(ctx, m.id, func(r *jobs.Record) error {
		if r.Run != m.run || r.Status.Terminal() {
			return jobs.ErrNoChange
		}
		r.UnreachableSinceMS, r.UnreachableError = 0, ""
		return r.Finish(jobs.StatusFailed, msg)
	})
	if err != nil && ctx.Err() == nil {
		m.log.Error("record external failure", "err", err)
	}
}

// submit hands the run to the backend and records the backend's id. It
// returns the record as written, or nil when the mirror has nothing more to
// do (the submission failed and was recorded, or another run took the name).
func (m *mirror) submit(ctx context.Context, r *jobs.Record) *jobs.Record {
	d, b, id, run := m.d, m.b, m.id, m.run
	// A stop cancels ctx; the submission and the record of its id must
	// still complete, or the backend's job is orphaned (never stopped).
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if ls, ok := b.(LogStarter); ok && r.LogCursor == 0 {
		// Recorded before the submission, so no restart can lose it.
		start, err := ls.LogStart(sctx, id, r.Run)
		if err != nil {
			if ctx.Err() == nil {
				m.fail(ctx, fmt.Sprintf("submit to %s: find where its logs start: %v", b.Name(), err))
			}
			return nil
		}
		if start > 0 {
			r, _, err = d.store.Update(sctx, id, func(r *jobs.Record) error {
				if r.Run != run || r.ExternalID != "" || r.LogCursor != 0 {
					return jobs.ErrNoChange
				}
				r.LogCursor = start
				return nil
			})
			if err != nil {
				m.log.Error("record log start", "err", err)
				return nil
			}
			if r.Run != run {
				return nil
			}
		}
	}
	ext, err := b.Submit(sctx, id, r.Run, &r.Request)
	if err != nil {
		if ctx.Err() == nil {
			m.fail(ctx, fmt.Sprintf("submit to %s: %v", b.Name(), err))
		}
		return nil
	}
	r, _, err = d.store.Update(sctx, id, func(r *jobs.Record) error {
		if r.Run != run {
			return jobs.ErrNoChange
		}
		r.ExternalID = ext
		if !r.Status.Terminal() {
			r.PendingReason = "submitted to " + b.Name() + " as " + ext
		}
		return nil
	})
	if err != nil {
		m.log.Error("record external id", "err", err)
		return nil
	}
	if r.Run != run {
		return nil
	}
	if r.Status == jobs.StatusStopped || r.StopRequestedMS > 0 {
		d.stopExternal(r) // stopped while submitting
	}
	return r
}

// follow polls the submitted run r until it ends or ctx does.
func (m *mirror) follow(ctx context.Context, r *jobs.Record) {
	m.ext = r.ExternalID
	m.lw = jobs.NewLogWriter(m.d.js, m.id, 0, 0)
	m.lw.Dedup(r.Run)
	m.lw.SetNext(r.LogLines)
	m.cursor = r.LogCursor
	if r.UnreachableSinceMS > 0 {
		// An earlier dispatcher lost contact: the give-up counts from then.
		m.failingSince = time.UnixMilli(r.UnreachableSinceMS)
		m.log.Warn("backend unreachable since an earlier dispatcher's polls; polling on", "since", m.failingSince)
	}
	t := time.NewTicker(m.d.o.PollInterval)
	defer t.Stop()
	for !m.poll(ctx) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pull mirrors the lines after the cursor into FRAY_LOGS.
func (m *mirror) pull(ctx context.Context) error {
	lines, next, lerr := m.b.Logs(ctx, m.ext, m.cursor)
	if lerr == nil && (len(lines) > 0 || next != m.cursor) {
		for _, l := range lines {
			if err := m.lw.Line(ctx, l); err != nil {
				lerr = err
			}
		}
		if err := m.lw.Flush(ctx); err != nil {
			lerr = err
		}
		if lerr == nil {
			m.cursor = next
		}
	}
	return lerr
}

// pullLast mirrors the lines a finished job left.
func (m *mirror) pullLast(ctx context.Context) {
	if err := m.pull(ctx); err != nil && ctx.Err() == nil {
		m.log.Warn("mirror the last logs", "err", err)
	}
}

// poll mirrors logs and status once, and reports whether the mirror is done.
func (m *mirror) poll(ctx context.Context) (done bool) {
	// Logs first, so a finished job's record is written after its last
	// lines are in FRAY_LOGS.
	lerr := m.pull(ctx)
	st, serr := m.b.Status(ctx, m.ext)
	if ctx.Err() != nil {
		return true
	}
	if serr != nil && errors.Is(serr, ErrJobNotFound) {
		m.notFound++
		if m.notFound == 1 {
			m.log.Warn("backend does not know the job", "err", serr)
		}
	} else {
		m.notFound = 0
	}
	// Any failure but the backend's answer that it does not know the
	// job means it cannot be reached: said once, and once when it
	// answers again (the record shows it meanwhile).
	lost := serr != nil && m.notFound == 0
	wasLost := !m.failingSince.IsZero()
	switch {
	case lost && m.failingSince.IsZero():
		m.failingSince = time.Now()
		m.log.Warn("lost contact with backend; polling on", "err", serr)
	case !lost && !m.failingSince.IsZero():
		m.log.Info("contact with backend restored", "after", time.Since(m.failingSince).Round(time.Second))
		m.failingSince = time.Time{}
	}
	// A log fetch that failed with the status poll, or just before
	// contact returned, is part of the lost contact.
	switch {
	case lerr != nil && !lost && !wasLost && !m.logsFailing:
		m.logsFailing = true
		m.log.Warn("mirror logs", "err", lerr)
	case lerr == nil && m.logsFailing:
		m.logsFailing = false
		m.log.Info("mirroring logs again")
	}
	switch {
	case serr == nil && st.State.Terminal():
		// Lines may have come between the logs and the status read.
		m.pullLast(ctx)
		m.settle(ctx, &st)
		return true
	case !m.drainUntil.IsZero() && (m.notFound > 0 || time.Now().After(m.drainUntil)):
		// The backend forgot the job or never finished it in time.
		m.pullLast(ctx)
		m.settle(ctx, nil)
		return true
	case !m.drainUntil.IsZero():
		// Draining: keep trying until drainUntil.
	case m.notFound >= NotFoundGiveUp:
		m.fail(ctx, fmt.Sprintf("%s no longer knows job %s (its head restarted without its job table, or the job was deleted): %v", m.b.Name(), m.ext, serr))
		return true
	case lost && time.Since(m.failingSince) > StatusGiveUp:
		m.fail(ctx, fmt.Sprintf("lost contact with %s for %s: %v", m.b.Name(), StatusGiveUp, serr))
		return true
	}
	if m.drainUntil.IsZero() {
		ended := m.record(ctx, st, serr, lost)
		if ended != nil {
			if ended.Run != m.run {
				return true // a new run of the name has its own mirror
			}
			end := time.Now()
			if ended.FinishedMS > 0 {
				end = time.UnixMilli(ended.FinishedMS)
			}
			m.drainUntil = end.Add(m.d.o.StopWait)
		}
	}
	m.askStop(ctx)
	return false
}

// record writes a live run's log cursor, its reachability and the status
// st the backend reported (serr when it could not be read; lost when that
// means the backend is unreachable). It returns the record when the run
// already ended on fray's side (or another run took the name), else nil.
func (m *mirror) record(ctx context.Context, st RemoteStatus, serr error, lost bool) (ended *jobs.Record) {
	_, _, err := m.d.store.Update(ctx, m.id, func(r *jobs.Record) error {
		if r.Run != m.run || r.Status.Terminal() {
			ended = r
			return jobs.ErrNoChange
		}
		m.stopAsked = r.StopRequestedMS
		changed := r.LogCursor != m.cursor
		r.LogCursor, r.LogLines = m.cursor, m.lw.Next()
		if lost {
			if r.UnreachableSinceMS == 0 { // else an earlier dispatcher's
				r.UnreachableSinceMS = m.failingSince.UnixMilli()
				changed = true
			}
			if msg := clip(serr.Error(), maxUnreachableError); r.UnreachableError != msg {
				r.UnreachableError = msg
				changed = true
			}
		} else if r.UnreachableSinceMS != 0 || r.UnreachableError != "" {
			r.UnreachableSinceMS, r.UnreachableError = 0, ""
			changed = true
		}
		if serr != nil {
			if !changed {
				return jobs.ErrNoChange
			}
			return nil
		}
		switch s := st.State; {
		case s == jobs.StatusRunning && r.Status != jobs.StatusRunning:
			r.Status = jobs.StatusRunning
			r.StartedMS = jobwire.NowMS()
			r.PendingReason = ""
			startAttempts(r, m.b.Name())
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
		m.log.Warn("record external status", "err", err)
	}
	return ended
}

// settle records the end: the last logs are mirrored, so the job's status
// (st, when the backend finished it and the record is still live) and its
// current attempts' exited are written.
func (m *mirror) settle(ctx context.Context, st *RemoteStatus) {
	_, _, err := m.d.store.Update(ctx, m.id, func(r *jobs.Record) error {
		if r.Run != m.run {
			return jobs.ErrNoChange
		}
		r.LogCursor, r.LogLines = m.cursor, m.lw.Next()
		r.UnreachableSinceMS, r.UnreachableError = 0, ""
		if !r.Status.Terminal() && st != nil {
			msg := st.Message
			switch {
			case st.State == jobs.StatusSucceeded:
				msg = "" // a backend's "finished successfully" is no error
			case st.State == jobs.StatusStopped && r.StopReason != "":
				msg = r.StopReason // the stop fray asked for
			}
			// A job that ran and finished between two polls was never
			// seen RUNNING: the backend's clock gives its duration.
			ranUnseen := r.StartedMS == 0 && st.StartedMS > 0
			if ranUnseen {
				r.StartedMS = st.StartedMS
				startAttempts(r, m.b.Name())
			}
			if err := r.Finish(st.State, msg); err != nil {
				return err
			}
			if ranUnseen && st.FinishedMS >= st.StartedMS {
				r.FinishedMS = st.FinishedMS
				for i := range r.Tasks {
					r.Tasks[i].Current().EndMS = r.FinishedMS
				}
			}
			if st.State != jobs.StatusStopped {
				for i := range r.Tasks {
					r.Tasks[i].State = terminalTask(st.State)
				}
			}
		}
		now := jobwire.NowMS()
		for i := range r.Tasks {
			t := &r.Tasks[i]
			a := t.Current()
			if a == nil || a.Attempt != r.Attempt || a.Exited {
				continue
			}
			if t.State.Done() {
				a.State = t.State
			}
			if a.EndMS == 0 {
				a.EndMS = now
			}
			a.Exited = true
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		m.log.Warn("record external end", "err", err)
	}
}

// clip cuts s to at most n bytes (on a rune boundary), marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
