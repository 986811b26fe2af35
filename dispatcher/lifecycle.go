package dispatcher

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
)

// finish moves a job to a terminal state and cleans up after it.
func (d *Dispatcher) finish(ctx context.Context, id string, s jobs.JobStatus, msg string) {
	changed := false
	_, err := d.mutate(ctx, id, func(r *jobs.Record) error {
		changed = false
		if r.Status.Terminal() {
			return jobs.ErrNoChange
		}
		changed = true
		return r.Finish(s, msg)
	})
	if err != nil {
		d.log.Error("finish job", "job", id, "err", err)
		return
	}
	if changed {
		d.afterFinish(ctx, id)
	}
}

// afterFinish frees a finished job's capacity, stops its external run (whose
// mirror drains its last lines by itself) and its children.
func (d *Dispatcher) afterFinish(ctx context.Context, id string) {
	e := d.recs[id]
	if e == nil {
		return
	}
	d.log.Info("job finished", "job", id, "status", e.r.Status, "error", e.r.Error)
	d.release(ctx, id, -1, "")
	if e.r.Backend != "" && e.r.Backend != BackendNative {
		if e.r.Status == jobs.StatusStopped && e.r.StopRequestedMS == 0 {
			d.stopExternal(e.r) // ended on fray's side; else its backend ended it
		}
		// The mirror is not cancelled: it keeps mirroring logs until the
		// backend reports the job finished (at most StopWait), then marks
		// the job's attempts exited and ends by itself.
		delete(d.mirrors, id)
	}
	for cid, ce := range d.recs {
		if ce.r.Parent == id && !ce.r.Status.Terminal() {
			d.stopJob(ctx, cid, fmt.Sprintf("parent job %s ended %s", id, e.r.Status))
		}
	}
}

// stopJob stops a live job.
func (d *Dispatcher) stopJob(ctx context.Context, id, reason string) {
	e := d.recs[id]
	if e == nil {
		r, rev, err := d.store.Get(ctx, id)
		if err != nil {
			return
		}
		e = &recEntry{r, rev}
		d.recs[id] = e
	}
	if e.r.Status.Terminal() {
		return
	}
	if external(e.r) {
		d.requestStop(ctx, id, reason)
		return
	}
	d.finish(ctx, id, jobs.StatusStopped, reason)
}

func (d *Dispatcher) parentFinished(r *jobs.Record) bool {
	if r.Parent == "" {
		return false
	}
	p := d.recs[r.Parent]
	return p != nil && p.r.Status.Terminal()
}

// checkTimeouts stops running jobs past their timeout.
func (d *Dispatcher) checkTimeouts(ctx context.Context) {
	now := jobwire.NowMS()
	for id, e := range d.recs {
		r := e.r
		if r.Status != jobs.StatusRunning || r.Request.Timeout <= 0 || r.StartedMS == 0 {
			continue
		}
		if time.Duration(now-r.StartedMS)*time.Millisecond > r.Request.Timeout {
			d.stopJob(ctx, id, fmt.Sprintf("timed out after %s", r.Request.Timeout))
		}
	}
}

// DefaultStartTimeout is Options.StartTimeout's default.
const DefaultStartTimeout = 2 * time.Minute

// checkStarts takes back the tasks of running native jobs that their
// workers have not started within StartTimeout of the placement: the job
// goes back to PENDING with a reason that names the worker, the attempt
// records why it ended, and that worker process gets nothing more.
func (d *Dispatcher) checkStarts(ctx context.Context) {
	now := jobwire.NowMS()
	for id, e := range d.recs {
		r := e.r
		if r.Status != jobs.StatusRunning || (r.Backend != "" && r.Backend != BackendNative) || r.StartedMS == 0 ||
			time.Duration(now-r.StartedMS)*time.Millisecond <= d.o.StartTimeout {
			continue
		}
		for _, t := range r.Tasks {
			if t.State == jobs.TaskAssigned {
				d.notStarted(ctx, id, r.Attempt, t.Index, t.Worker)
				break
			}
		}
	}
}

// notStarted takes back the assignment of task of job id (attempt) that
// worker never started, and places the job again.
func (d *Dispatcher) notStarted(ctx context.Context, id string, attempt, task int, worker string) {
	why := fmt.Sprintf("task %d was not started by worker %s within %s of its placement (no job runner there?)", task, worker, d.o.StartTimeout)
	d.log.Warn("assignment not started; placing the job again", "job", id, "task", task, "worker", worker, "after", d.o.StartTimeout)
	if w := d.live[worker]; w != nil {
		d.silent[worker] = w.StartedMS
	}
	restarted := false
	if _, err := d.mutate(ctx, id, func(r *jobs.Record) error {
		restarted = false
		if r.Status != jobs.StatusRunning || r.Attempt != attempt || task >= len(r.Tasks) || r.Tasks[task].State != jobs.TaskAssigned {
			return jobs.ErrNoChange
		}
		if a := r.Tasks[task].Current(); a != nil && a.Attempt == attempt {
			a.Error = "not started within " + d.o.StartTimeout.String()
		}
		restarted = true
		restart(r, why+"; placing it again")
		return nil
	}); err != nil {
		d.log.Error("take back an unstarted assignment", "job", id, "err", err)
		return
	}
	if restarted {
		d.release(ctx, id, -1, "")
		d.dirty = true
	}
}

// unschedulable says why r, PENDING and not placeable now for reason, has
// waited past its scheduling timeout, or returns "" while it may still
// wait. The wait is counted from r.PendingSinceMS: the submission, or the
// gang restart the job waits to be placed after.
func unschedulable(r *jobs.Record, reason string, now time.Time) string {
	limit := r.Request.SchedulingTimeout
	if limit <= 0 || now.Sub(time.UnixMilli(r.PendingSinceMS())) < limit {
		return ""
	}
	return fmt.Sprintf("unschedulable for %s (its scheduling timeout); last pending reason: %s", limit, reason)
}

// reconcile repairs what a crash can leave behind: tasks on workers that
// died while no dispatcher watched, placements whose allocations were never
// written, and allocations no live job owns.
func (d *Dispatcher) reconcile(ctx context.Context) {
	for id, e := range d.recs {
		r := e.r
		if r.Status.Terminal() {
			continue
		}
		if r.Backend != "" && r.Backend != BackendNative {
			if d.mirrors[id] == nil {
				d.startMirror(ctx, id)
			}
			continue
		}
		if r.Status != jobs.StatusRunning {
			continue
		}
		lost := ""
		missing := false
		for i, t := range r.Tasks {
			if t.State.Done() {
				continue
			}
			if d.live[t.Worker] == nil {
				lost = t.Worker
				break
			}
			as := assignment(r, i)
			ae := d.allocs[t.Worker]
			if ae == nil || !slices.ContainsFunc(ae.a.Tasks, func(x jobwire.Assignment) bool { return x.Same(&as) }) {
				missing = true
			}
		}
		switch {
		case lost != "":
			d.preempt(ctx, id, workerLostReason(lost))
		case missing:
			if err := d.claim(ctx, r); err != nil {
				d.preempt(ctx, id, "its placement could not be restored: "+err.Error())
			}
		}
	}
	for worker, ae := range d.allocs {
		if d.live[worker] == nil && ae.rev != 0 && len(ae.a.Tasks) > 0 {
			d.workerLost(ctx, worker)
			continue
		}
		for _, t := range ae.a.Tasks {
			re := d.recs[t.Job]
			stale := re == nil || re.r.Status.Terminal() || re.r.Run != t.Run || re.r.Attempt != t.Attempt ||
				t.Task >= len(re.r.Tasks) || re.r.Tasks[t.Task].Worker != worker || re.r.Tasks[t.Task].State.Done()
			if stale && time.Since(time.UnixMilli(t.CreatedMS)) > 2*time.Second {
				d.releaseExact(ctx, worker, &t)
			}
		}
	}
}
