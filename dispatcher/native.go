package dispatcher

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go/jetstream"
)

// workerStates is the live, job-capable workers with their claimed capacity.
func (d *Dispatcher) workerStates() []WorkerState {
	out := make([]WorkerState, 0, len(d.live))
	for id, w := range d.live {
		if w.Resources.CPU <= 0 {
			continue // no job runner on this worker
		}
		out = append(out, WorkerState{Info: *w, Used: d.used(id)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Info.ID < out[j].Info.ID })
	return out
}

// placeAll tries to place every PENDING job, highest priority first, then
// oldest first.
func (d *Dispatcher) placeAll(ctx context.Context) {
	d.dirty = false
	var pending []*jobs.Record
	for _, e := range d.recs {
		if e.r.Status == jobs.StatusPending {
			pending = append(pending, e.r)
		}
	}
	sort.Slice(pending, func(i, j int) bool {
		a, b := pending[i], pending[j]
		if a.Request.Priority != b.Request.Priority {
			return a.Request.Priority > b.Request.Priority
		}
		if a.SubmittedMS != b.SubmittedMS {
			return a.SubmittedMS < b.SubmittedMS
		}
		return a.ID < b.ID
	})
	for _, r := range pending {
		if ctx.Err() != nil {
			return
		}
		if r.Backend != "" && r.Backend != BackendNative {
			d.startMirror(ctx, r.ID)
			continue
		}
		d.placeOne(ctx, r.ID)
	}
	d.dirty = false
}

// placeOne places job id if it is PENDING and fits now.
func (d *Dispatcher) placeOne(ctx context.Context, id string) {
	e := d.recs[id]
	if e == nil || e.r.Status != jobs.StatusPending {
		return
	}
	r := e.r
	if r.Backend == "" {
		// Recorded by a client while no dispatcher ran: choose and check
		// the backend now.
		name, err := d.backendFor(&r.Request)
		if err == nil {
			err = d.validate(name, &r.Request)
		}
		if err != nil {
			d.finish(ctx, id, jobs.StatusFailed, err.Error())
			return
		}
		if _, err := d.mutate(ctx, id, func(r *jobs.Record) error {
			if r.Backend != "" {
				return jobs.ErrNoChange
			}
			r.Backend = name
			return nil
		}); err != nil {
			d.log.Error("record backend", "job", id, "err", err)
			return
		}
		if name != BackendNative {
			d.startMirror(ctx, id)
			return
		}
		r = d.recs[id].r
	}
	if d.parentFinished(r) {
		d.finish(ctx, id, jobs.StatusStopped, fmt.Sprintf("parent job %s has finished", r.Parent))
		return
	}
	p := Place(&r.Request, d.workerStates())
	if p.Workers == nil {
		if p.Never && time.Since(d.started) >= d.o.StartupGrace {
			d.finish(ctx, id, jobs.StatusFailed, "cannot be scheduled: "+p.Reason)
			return
		}
		if r.PendingReason != p.Reason {
			if _, err := d.mutate(ctx, id, func(r *jobs.Record) error {
				if r.Status != jobs.StatusPending || r.PendingReason == p.Reason {
					return jobs.ErrNoChange
				}
				r.PendingReason = p.Reason
				return nil
			}); err != nil {
				d.log.Warn("record pending reason", "job", id, "err", err)
			}
		}
		return
	}
	// Record the placement first: the record is the intent, allocations
	// follow it, and reconcile repairs a crash in between.
	now := jobs.NowMS()
	placed, err := d.mutate(ctx, id, func(r *jobs.Record) error {
		if r.Status != jobs.StatusPending {
			return fmt.Errorf("no longer pending: %s", r.Status)
		}
		r.Status = jobs.StatusRunning
		r.PendingReason = ""
		r.StartedMS = now
		if len(r.Tasks) != len(p.Workers) {
			r.Tasks = jobs.NewTasks(len(p.Workers))
		}
		for i := range r.Tasks {
			t := &r.Tasks[i]
			t.State = jobs.TaskAssigned
			t.Worker = p.Workers[i]
			t.Attempts = append(t.Attempts, jobs.TaskAttempt{Attempt: r.Attempt, Worker: p.Workers[i], State: jobs.TaskAssigned, ExitCode: -1})
			if len(t.Attempts) > jobs.MaxAttemptsKept {
				t.Attempts = t.Attempts[len(t.Attempts)-jobs.MaxAttemptsKept:]
			}
		}
		return nil
	})
	if err != nil {
		d.log.Debug("placement lost", "job", id, "err", err)
		return
	}
	if err := d.claim(ctx, placed); err != nil {
		d.log.Warn("claim capacity", "job", id, "err", err)
		d.release(ctx, id, -1, "")
		if _, err := d.mutate(ctx, id, func(r *jobs.Record) error {
			if r.Status != jobs.StatusRunning || r.Attempt != placed.Attempt {
				return jobs.ErrNoChange
			}
			r.Status = jobs.StatusPending
			r.PendingReason = "placement raced with another dispatcher; retrying"
			for i := range r.Tasks {
				r.Tasks[i].State = jobs.TaskPending
				r.Tasks[i].Worker = ""
				if a := r.Tasks[i].Current(); a != nil && a.Attempt == r.Attempt {
					r.Tasks[i].Attempts = r.Tasks[i].Attempts[:len(r.Tasks[i].Attempts)-1]
				}
			}
			return nil
		}); err != nil {
			d.log.Error("undo placement", "job", id, "err", err)
		}
		d.dirty = true
		return
	}
	d.log.Debug("job placed", "job", id, "workers", p.Workers, "attempt", placed.Attempt)
}

// assignment builds the runner's view of task i of r.
func assignment(r *jobs.Record, i int) jobs.Assignment {
	need := NeedOf(&r.Request)
	return jobs.Assignment{
		Job: r.ID, Run: r.Run, Namespace: r.Namespace, Task: i, NumTasks: len(r.Tasks), Attempt: r.Attempt,
		CPU: need.CPU, RAMBytes: need.RAM, DiskBytes: need.Disk, Devices: need.Devices,
		Argv: r.Request.Entrypoint.Argv, Func: r.Request.Entrypoint.Func, Arg: r.Request.Entrypoint.Arg,
		Env: r.Request.Environment.EnvVars, Workdir: r.Request.Environment.Workdir, Setup: r.Request.Environment.SetupCommands,
		CreatedMS: jobs.NowMS(),
	}
}

// claim writes r's assignments into its workers' allocations, checking
// their free capacity against the latest allocation (compare-and-set).
func (d *Dispatcher) claim(ctx context.Context, r *jobs.Record) error {
	byWorker := map[string][]int{}
	var order []string
	for i, t := range r.Tasks {
		if t.State != jobs.TaskAssigned {
			continue
		}
		if _, ok := byWorker[t.Worker]; !ok {
			order = append(order, t.Worker)
		}
		byWorker[t.Worker] = append(byWorker[t.Worker], i)
	}
	need := NeedOf(&r.Request)
	for _, worker := range order {
		info := d.live[worker]
		if info == nil {
			return fmt.Errorf("worker %s is gone", worker)
		}
		err := d.mutateAlloc(ctx, worker, func(a *jobs.Allocation) error {
			ws := WorkerState{Info: *info}
			var add []jobs.Assignment
			for _, i := range byWorker[worker] {
				as := assignment(r, i)
				if slices.ContainsFunc(a.Tasks, func(t jobs.Assignment) bool { return t.Same(&as) }) {
					continue
				}
				add = append(add, as)
			}
			if len(add) == 0 {
				return jobs.ErrNoChange
			}
			for _, t := range a.Tasks {
				ws.Used = ws.Used.add(Need{t.CPU, t.RAMBytes, t.DiskBytes, t.Devices})
			}
			for range add {
				if !fits(need, ws.free()) {
					return errAllocConflict
				}
				ws.Used = ws.Used.add(need)
			}
			a.Tasks = append(a.Tasks, add...)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// onEvent applies a task event or a control message from FRAY_JOBS.
func (d *Dispatcher) onEvent(ctx context.Context, m jetstream.Msg) {
	subj := m.Subject()
	switch {
	case len(subj) > len(jobs.SubjectControlPrefix) && subj[:len(jobs.SubjectControlPrefix)] == jobs.SubjectControlPrefix:
		var c jobs.Control
		if err := objects.Unmarshal(m.Data(), &c); err != nil {
			d.log.Warn("malformed control message dropped", "subject", subj, "err", err)
			return
		}
		if c.Op == jobs.OpStop {
			reason := c.Reason
			if reason == "" {
				reason = "stopped by request"
			}
			d.stopJob(ctx, c.Job, reason)
		}
	default:
		var ev jobs.TaskEvent
		if err := objects.Unmarshal(m.Data(), &ev); err != nil {
			d.log.Warn("malformed task event dropped", "subject", subj, "err", err)
			return
		}
		d.onTaskEvent(ctx, &ev)
	}
}

// onTaskEvent folds a worker's report into the job's record and decides
// what follows: success, retry, failure.
func (d *Dispatcher) onTaskEvent(ctx context.Context, ev *jobs.TaskEvent) {
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
		if ev.Kind == jobs.EventExited {
			d.releaseExact(ctx, ev.Worker, &jobs.Assignment{Job: ev.Job, Run: ev.Run, Task: ev.Task, Attempt: ev.Attempt})
		}
		return
	}
	if t := r.Tasks[ev.Task]; t.Worker != ev.Worker || t.State.Done() {
		return
	}
	switch ev.Kind {
	case jobs.EventStarted:
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
			}
			return nil
		}); err != nil {
			d.log.Warn("record task start", "job", ev.Job, "err", err)
		}
	case jobs.EventExited:
		d.releaseExact(ctx, ev.Worker, &jobs.Assignment{Job: ev.Job, Run: ev.Run, Task: ev.Task, Attempt: ev.Attempt})
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
func (d *Dispatcher) taskExited(ctx context.Context, ev *jobs.TaskEvent) {
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
	now := jobs.NowMS()
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

// workerLost preempts every job with a live task on the lost worker and
// drops its allocation.
func (d *Dispatcher) workerLost(ctx context.Context, worker string) {
	for id, e := range d.recs {
		if e.r.Status != jobs.StatusRunning || (e.r.Backend != "" && e.r.Backend != BackendNative) {
			continue
		}
		for _, t := range e.r.Tasks {
			if t.Worker == worker && !t.State.Done() {
				d.preempt(ctx, id, fmt.Sprintf("worker %s lost (lease expired) while running task %d", worker, t.Index))
				break
			}
		}
	}
	if e := d.allocs[worker]; e != nil && e.rev != 0 {
		if err := d.store.KV.Delete(ctx, jobs.AllocKey(worker)); err != nil {
			d.log.Warn("drop allocation of lost worker", "worker", worker, "err", err)
		}
		delete(d.allocs, worker)
	}
	d.dirty = true
}

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

// afterFinish frees a finished job's capacity, stops its external run and
// its children.
func (d *Dispatcher) afterFinish(ctx context.Context, id string) {
	e := d.recs[id]
	if e == nil {
		return
	}
	d.log.Info("job finished", "job", id, "status", e.r.Status, "error", e.r.Error)
	d.release(ctx, id, -1, "")
	if e.r.Backend != "" && e.r.Backend != BackendNative {
		if e.r.Status == jobs.StatusStopped {
			d.stopExternal(e.r)
		}
		if cancel := d.mirrors[id]; cancel != nil {
			cancel()
			delete(d.mirrors, id)
		}
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
	now := jobs.NowMS()
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
			if ae == nil || !slices.ContainsFunc(ae.a.Tasks, func(x jobs.Assignment) bool { return x.Same(&as) }) {
				missing = true
			}
		}
		switch {
		case lost != "":
			d.preempt(ctx, id, fmt.Sprintf("worker %s lost (lease expired)", lost))
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
