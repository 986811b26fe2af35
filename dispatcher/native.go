package dispatcher

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
)

// workerStates is the live, job-capable workers with their claimed capacity.
func (d *Dispatcher) workerStates() []WorkerState {
	out := make([]WorkerState, 0, len(d.live))
	for id, w := range d.live {
		if w.Resources.CPU <= 0 {
			continue // no job runner on this worker
		}
		if _, expiring := d.expiring[id]; expiring {
			continue // its lease expired: nothing new until it renews
		}
		if started, ok := d.silent[id]; ok && started == w.StartedMS {
			continue // it left an assignment unstarted
		}
		out = append(out, WorkerState{Info: *w, Used: d.used(id)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Info.ID < out[j].Info.ID })
	return out
}

// silentText names the live workers left out of placement because they did
// not start an assignment, or is "".
func (d *Dispatcher) silentText() string {
	var ids []string
	for id, started := range d.silent {
		if w := d.live[id]; w != nil && w.StartedMS == started {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return ""
	}
	sort.Strings(ids)
	return fmt.Sprintf("not placed on %s: left an assignment unstarted for %s (no job runner there?)", strings.Join(ids, ", "), d.o.StartTimeout)
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
		if s := d.silentText(); s != "" {
			p.Reason += "; " + s
		}
		// Within the startup grace workers may still be registering: no
		// verdict on a job's chances yet.
		settled := time.Since(d.started) >= d.o.StartupGrace
		if p.Never && settled {
			d.finish(ctx, id, jobs.StatusFailed, "cannot be scheduled: "+p.Reason)
			return
		}
		if msg := unschedulable(r, p.Reason, time.Now()); msg != "" && settled {
			d.finish(ctx, id, jobs.StatusFailed, msg)
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
	now := jobwire.NowMS()
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
			if len(t.Attempts) > jobwire.MaxAttemptsKept {
				t.Attempts = t.Attempts[len(t.Attempts)-jobwire.MaxAttemptsKept:]
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
func assignment(r *jobs.Record, i int) jobwire.Assignment {
	need := NeedOf(&r.Request)
	return jobwire.Assignment{
		Job: r.ID, Run: r.Run, Namespace: r.Namespace, Task: i, NumTasks: len(r.Tasks), Attempt: r.Attempt,
		CPU: need.CPU, RAMBytes: need.RAM, DiskBytes: need.Disk, Devices: need.Devices,
		Argv: r.Request.Entrypoint.Argv, Func: r.Request.Entrypoint.Func, Arg: r.Request.Entrypoint.Arg,
		Env: r.Request.Environment.EnvVars, EnvFromWorker: r.Request.Environment.EnvFromWorker, Workdir: r.Request.Environment.Workdir, Setup: r.Request.Environment.SetupCommands,
		CreatedMS: jobwire.NowMS(),
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
		err := d.mutateAlloc(ctx, worker, func(a *jobwire.Allocation) error {
			ws := WorkerState{Info: *info}
			var add []jobwire.Assignment
			for _, i := range byWorker[worker] {
				as := assignment(r, i)
				if slices.ContainsFunc(a.Tasks, func(t jobwire.Assignment) bool { return t.Same(&as) }) {
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
