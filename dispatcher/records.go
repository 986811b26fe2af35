package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
)

// clone deep-copies what mutations change in a record.
func clone(r *jobs.Record) *jobs.Record {
	cp := *r
	cp.Tasks = make([]jobs.TaskState, len(r.Tasks))
	for i, t := range r.Tasks {
		t.Attempts = slices.Clone(t.Attempts)
		cp.Tasks[i] = t
	}
	return &cp
}

// mutate applies fn to job id's record and writes it with compare-and-set:
// first against the cached revision, then, on a lost race, against a fresh
// read. The cache is updated with what was written.
func (d *Dispatcher) mutate(ctx context.Context, id string, fn func(*jobs.Record) error) (*jobs.Record, error) {
	if e := d.recs[id]; e != nil {
		cp := clone(e.r)
		if err := fn(cp); err != nil {
			if errors.Is(err, jobs.ErrNoChange) {
				return e.r, nil
			}
			return nil, err
		}
		rev, err := d.store.Put(ctx, cp, e.r, e.rev)
		if err == nil {
			d.recs[id] = &recEntry{cp, rev}
			return cp, nil
		}
		if !jobs.IsConflict(err) {
			return nil, err
		}
	}
	r, rev, err := d.store.Update(ctx, id, fn)
	if err != nil {
		return nil, err
	}
	if cur := d.recs[id]; cur == nil || cur.rev < rev {
		d.recs[id] = &recEntry{r, rev}
	}
	return r, nil
}

// errAllocConflict means a worker's capacity was taken meanwhile.
var errAllocConflict = errors.New("dispatcher: worker capacity taken meanwhile")

// mutateAlloc applies fn to worker's allocation record with compare-and-set,
// retrying on a lost race with a fresh read.
func (d *Dispatcher) mutateAlloc(ctx context.Context, worker string, fn func(*jobwire.Allocation) error) error {
	key := jobwire.AllocKey(worker)
	for try := 0; ; try++ {
		e := d.allocs[worker]
		if e == nil {
			e = &allocEntry{a: jobwire.Allocation{Worker: worker}}
		}
		a := e.a
		a.Tasks = slices.Clone(a.Tasks)
		a.V = jobwire.WireVersion
		a.Worker = worker
		if err := fn(&a); err != nil {
			if errors.Is(err, jobs.ErrNoChange) {
				return nil
			}
			return err
		}
		b, err := objects.Marshal(&a)
		if err != nil {
			return err
		}
		var rev uint64
		if e.rev == 0 {
			rev, err = d.store.KV.Create(ctx, key, b)
		} else {
			rev, err = d.store.KV.Update(ctx, key, b, e.rev)
		}
		if err == nil {
			d.allocs[worker] = &allocEntry{a: a, rev: rev}
			return nil
		}
		if !jobs.IsConflict(err) || try >= 10 {
			return fmt.Errorf("dispatcher: allocation of %s: %w", worker, err)
		}
		// Lost a race: re-read and retry.
		fresh, gerr := d.store.KV.Get(ctx, key)
		if gerr != nil {
			d.allocs[worker] = &allocEntry{a: jobwire.Allocation{Worker: worker}}
			continue
		}
		var fa jobwire.Allocation
		if objects.Unmarshal(fresh.Value(), &fa) != nil {
			fa = jobwire.Allocation{Worker: worker}
		}
		d.allocs[worker] = &allocEntry{a: fa, rev: fresh.Revision()}
	}
}

// used sums the capacity claimed on worker.
func (d *Dispatcher) used(worker string) Need {
	var n Need
	if e := d.allocs[worker]; e != nil {
		for _, t := range e.a.Tasks {
			n = n.add(Need{CPU: t.CPU, RAM: t.RAMBytes, Disk: t.DiskBytes, Devices: t.Devices})
		}
	}
	return n
}

// release removes job id's assignments (only task when task >= 0) from
// every worker.
func (d *Dispatcher) release(ctx context.Context, id string, task int, onlyWorker string) {
	for worker, e := range d.allocs {
		if onlyWorker != "" && worker != onlyWorker {
			continue
		}
		has := slices.ContainsFunc(e.a.Tasks, func(t jobwire.Assignment) bool {
			return t.Job == id && (task < 0 || t.Task == task)
		})
		if !has {
			continue
		}
		err := d.mutateAlloc(ctx, worker, func(a *jobwire.Allocation) error {
			n := len(a.Tasks)
			a.Tasks = slices.DeleteFunc(a.Tasks, func(t jobwire.Assignment) bool {
				return t.Job == id && (task < 0 || t.Task == task)
			})
			if len(a.Tasks) == n {
				return jobs.ErrNoChange
			}
			return nil
		})
		if err != nil {
			d.log.Error("release allocation", "job", id, "worker", worker, "err", err)
		}
		d.dirty = true
	}
}

// releaseExact removes one task attempt's assignment from worker.
func (d *Dispatcher) releaseExact(ctx context.Context, worker string, as *jobwire.Assignment) {
	e := d.allocs[worker]
	if e == nil || !slices.ContainsFunc(e.a.Tasks, func(t jobwire.Assignment) bool { return t.Same(as) }) {
		return
	}
	err := d.mutateAlloc(ctx, worker, func(a *jobwire.Allocation) error {
		n := len(a.Tasks)
		a.Tasks = slices.DeleteFunc(a.Tasks, func(t jobwire.Assignment) bool { return t.Same(as) })
		if len(a.Tasks) == n {
			return jobs.ErrNoChange
		}
		return nil
	})
	if err != nil {
		d.log.Error("release allocation", "job", as.Job, "worker", worker, "err", err)
	}
	d.dirty = true
}
