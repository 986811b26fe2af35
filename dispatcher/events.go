package dispatcher

import (
	"context"
	"fmt"

	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go/jetstream"
)

// onEvent applies a task event or a control message from FRAY_JOBS.
func (d *Dispatcher) onEvent(ctx context.Context, m jetstream.Msg) {
	subj := m.Subject()
	switch {
	case len(subj) > len(jobwire.SubjectControlPrefix) && subj[:len(jobwire.SubjectControlPrefix)] == jobwire.SubjectControlPrefix:
		var c jobwire.Control
		if err := objects.Unmarshal(m.Data(), &c); err != nil {
			d.log.Warn("malformed control message dropped", "subject", subj, "err", err)
			return
		}
		if c.Op == jobwire.OpStop {
			reason := c.Reason
			if reason == "" {
				reason = "stopped by request"
			}
			d.stopJob(ctx, c.Job, reason)
		}
	default:
		worker, job, ok := jobwire.ParseEventSubject(subj)
		var ev jobwire.TaskEvent
		if err := objects.Unmarshal(m.Data(), &ev); !ok || err != nil {
			d.log.Warn("malformed task event dropped", "subject", subj, "err", err)
			return
		}
		// The subject is what the sender's permissions allowed: an event
		// counts only for the worker and job it names. (A layout-1
		// subject names no worker; only a user allowed every event
		// subject can send one.)
		if job != jobwire.Token(ev.Job) || worker != "" && worker != jobwire.WorkerToken(ev.Worker) {
			d.log.Warn("task event dropped: its subject names another sender or job than the event", "subject", subj, "job", ev.Job, "worker", ev.Worker)
			return
		}
		d.onTaskEvent(ctx, &ev)
	}
}

// onTaskEvent folds a worker's report into the job's record and decides
// what follows: success, retry, failure.
func (d *Dispatcher) onTaskEvent(ctx context.Context, ev *jobwire.TaskEvent) {
	e := d.recs[ev.Job]
	if e == nil {
		if r, rev, err := d.store.Get(ctx, ev.Job); err == nil {
			e = &recEntry{r, rev}
			d.recs[ev.Job] = e
		} else {
			return
		}
	}
	r := e.r
	if r.Status.Terminal() || r.Run != ev.Run || r.Attempt != ev.Attempt || ev.Task < 0 || ev.Task >= len(r.Tasks) {
		if ev.Kind == jobwire.EventExited {
			d.releaseExact(ctx, ev.Worker, &jobwire.Assignment{Job: ev.Job, Run: ev.Run, Task: ev.Task, Attempt: ev.Attempt})
			if r.Status.Terminal() {
				d.lateExit(ctx, ev)
			}
		}
		return
	}
	if t := r.Tasks[ev.Task]; t.Worker != ev.Worker {
		// Only the worker the task is placed on reports on it.
		d.log.Warn("task event dropped: the task is not placed on its sender", "job", ev.Job, "task", ev.Task, "attempt", ev.Attempt, "kind", ev.Kind, "sender", ev.Worker, "placed_on", t.Worker)
		return
	} else if t.State.Done() {
		return
	}
	switch ev.Kind {
	case jobwire.EventStarted:
		if _, err := d.mutate(ctx, ev.Job, func(r *jobs.Record) error {
			if r.Status != jobs.StatusRunning || r.Attempt != ev.Attempt || r.Run != ev.Run {
				return jobs.ErrNoChange
			}
			t := &r.Tasks[ev.Task]
			if t.State != jobs.TaskAssigned {
				return jobs.ErrNoChange
			}
			t.State = jobs.TaskRunning
			if a := t.Current(); a != nil {
				a.State = jobs.TaskRunning
				a.StartMS = ev.TimeMS
				a.Devices = ev.Devices
			}
			return nil
		}); err != nil {
			d.log.Warn("record task start", "job", ev.Job, "err", err)
		}
	case jobwire.EventExited:
		d.releaseExact(ctx, ev.Worker, &jobwire.Assignment{Job: ev.Job, Run: ev.Run, Task: ev.Task, Attempt: ev.Attempt})
		if ev.DevicesBusy {
			// The worker could not give the task its devices: not the job's
			// fault, and not a reason to drain the worker. Rerun the gang
			// on the preemption budget.
			d.preempt(ctx, ev.Job, fmt.Sprintf("task %d could not start on worker %s: %s", ev.Task, ev.Worker, ev.Error))
			return
		}
		if ev.Preempted {
			if w := d.live[ev.Worker]; w != nil {
				w.Draining = true
				d.stopping[ev.Worker] = w.StartedMS
			}
			d.preempt(ctx, ev.Job, fmt.Sprintf("worker %s was drained (task %d)", ev.Worker, ev.Task))
			return
		}
		d.taskExited(ctx, ev)
	}
}

// taskExited records a task's end and settles the job.
func (d *Dispatcher) taskExited(ctx context.Context, ev *jobwire.TaskEvent) {
	var outcome string // "", "succeeded", "retry", "failed"
	var msg string
	_, err := d.mutate(ctx, ev.Job, func(r *jobs.Record) error {
		outcome, msg = "", ""
		if r.Status != jobs.StatusRunning || r.Attempt != ev.Attempt || r.Run != ev.Run {
			return jobs.ErrNoChange
		}
		t := &r.Tasks[ev.Task]
		if t.State.Done() {
			return jobs.ErrNoChange
		}
		st := jobs.TaskSucceeded
		if ev.ExitCode != 0 || ev.Error != "" {
			st = jobs.TaskFailed
		}
		t.State = st
		if a := t.Current(); a != nil {
			a.State = st
			a.ExitCode = ev.ExitCode
			a.Error = ev.Error
			a.EndMS = ev.TimeMS
			a.Exited = true
		}
		failed, done := 0, 0
		for _, t := range r.Tasks {
			if t.State == jobs.TaskFailed {
				failed++
			}
			if t.State.Done() {
				done++
			}
		}
		if st == jobs.TaskFailed && failed > r.Request.MaxTaskFailures {
			why := ev.Error
			if why == "" {
				why = fmt.Sprintf("exited with code %d", ev.ExitCode)
			}
			msg = fmt.Sprintf("task %d on worker %s %s", ev.Task, ev.Worker, why)
			r.Failures++
			if r.Failures > r.Request.MaxRetriesFailure {
				outcome = "failed"
				if r.Request.MaxRetriesFailure > 0 {
					msg = fmt.Sprintf("%s (failure %d, over MaxRetriesFailure %d)", msg, r.Failures, r.Request.MaxRetriesFailure)
				}
				return r.Finish(jobs.StatusFailed, msg)
			}
			outcome = "retry"
			restart(r, fmt.Sprintf("retrying after failure %d of %d: %s", r.Failures, r.Request.MaxRetriesFailure, msg))
			return nil
		}
		if done == len(r.Tasks) {
			outcome = "succeeded"
			return r.Finish(jobs.StatusSucceeded, "")
		}
		return nil
	})
	if err != nil {
		d.log.Error("record task exit", "job", ev.Job, "err", err)
		return
	}
	switch outcome {
	case "succeeded", "failed":
		d.afterFinish(ctx, ev.Job)
	case "retry":
		d.release(ctx, ev.Job, -1, "")
		d.dirty = true
	}
}

// restart puts r back to PENDING for its next gang attempt.
func restart(r *jobs.Record, reason string) {
	now := jobwire.NowMS()
	r.Attempt++
	r.Status = jobs.StatusPending
	r.PendingReason = reason
	for i := range r.Tasks {
		t := &r.Tasks[i]
		if a := t.Current(); a != nil && !a.State.Done() {
			a.State = jobs.TaskStopped
			a.EndMS = now
		}
		t.State = jobs.TaskPending
		t.Worker = ""
	}
}

// preempt handles the loss of a worker or its drain: the gang restarts
// while the preemption budget lasts.
func (d *Dispatcher) preempt(ctx context.Context, id, why string) {
	var finished, restarted bool
	_, err := d.mutate(ctx, id, func(r *jobs.Record) error {
		finished, restarted = false, false
		if r.Status != jobs.StatusRunning {
			return jobs.ErrNoChange
		}
		r.Preemptions++
		// Every live attempt says why it was stopped (its process, if any,
		// never reported an exit code).
		for i := range r.Tasks {
			if a := r.Tasks[i].Current(); a != nil && !a.State.Done() && a.Error == "" {
				a.Error = why
			}
		}
		if budget := r.Request.PreemptionBudget(); r.Preemptions > budget {
			finished = true
			return r.Finish(jobs.StatusFailed, fmt.Sprintf("%s; preempted %d times, over MaxRetriesPreemption %d", why, r.Preemptions, budget))
		}
		restarted = true
		restart(r, fmt.Sprintf("%s; rerunning (preemption %d of %d)", why, r.Preemptions, r.Request.PreemptionBudget()))
		return nil
	})
	if err != nil {
		d.log.Error("preempt", "job", id, "err", err)
		return
	}
	if finished {
		d.afterFinish(ctx, id)
	}
	if restarted {
		d.release(ctx, id, -1, "")
		d.dirty = true
	}
}

// workerLostReason is what a job and its stopped attempts say when their
// worker's registry lease expired.
func workerLostReason(worker string) string {
	return "worker lost (lease expired): " + worker
}

// workerLost preempts every job with a live task on the lost worker and
// drops its allocation.
func (d *Dispatcher) workerLost(ctx context.Context, worker string) {
	for id, e := range d.recs {
		if e.r.Status != jobs.StatusRunning || (e.r.Backend != "" && e.r.Backend != BackendNative) {
			continue
		}
		for _, t := range e.r.Tasks {
			if t.Worker == worker && !t.State.Done() {
				d.preempt(ctx, id, fmt.Sprintf("%s, running task %d", workerLostReason(worker), t.Index))
				break
			}
		}
	}
	if e := d.allocs[worker]; e != nil && e.rev != 0 {
		if err := d.store.KV.Delete(ctx, jobwire.AllocKey(worker)); err != nil {
			d.log.Warn("drop allocation of lost worker", "worker", worker, "err", err)
		}
		delete(d.allocs, worker)
	}
	d.dirty = true
}

// lateExit records the exit of a task the dispatcher stopped by ending its
// job (a stop, a timeout, a failed replica of a gang): the job's status
// stays, but its attempt gets the exit code and Exited, which tells log
// followers that the process's last lines are stored.
func (d *Dispatcher) lateExit(ctx context.Context, ev *jobwire.TaskEvent) {
	if _, err := d.mutate(ctx, ev.Job, func(r *jobs.Record) error {
		if !r.Status.Terminal() || r.Run != ev.Run || r.Attempt != ev.Attempt || ev.Task < 0 || ev.Task >= len(r.Tasks) {
			return jobs.ErrNoChange
		}
		a := r.Tasks[ev.Task].Current()
		if a == nil || a.Attempt != ev.Attempt || a.Worker != ev.Worker || a.Exited {
			return jobs.ErrNoChange
		}
		a.Exited = true
		a.ExitCode = ev.ExitCode
		a.Error = ev.Error
		a.EndMS = ev.TimeMS
		return nil
	}); err != nil {
		d.log.Warn("record exit of a finished job's task", "job", ev.Job, "task", ev.Task, "err", err)
	}
}
