package clusterview

import (
	"sort"
	"strconv"

	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/jobs"
)

// Pools returns every pool with a consumer or a live worker, by name, with
// copies of their history.
func (v *View) Pools() []Pool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	byName := map[string]*Pool{}
	for n, p := range v.pools {
		c := *p
		c.History = append([]Point(nil), p.History...)
		c.Workers, c.Slots, c.Busy = 0, 0, 0
		byName[n] = &c
	}
	if v.workers != nil {
		for _, w := range v.workers.Workers() {
			p := byName[w.Pool]
			if p == nil {
				p = &Pool{Name: w.Pool}
				byName[w.Pool] = p
			}
			p.Workers++
			p.Slots += w.Concurrency
			p.Busy += w.Running
		}
	}
	out := make([]Pool, 0, len(byName))
	for _, p := range byName {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Workers returns the live workers, by id.
func (v *View) Workers() []broker.WorkerInfo {
	v.mu.RLock()
	wv := v.workers
	v.mu.RUnlock()
	if wv == nil {
		return nil
	}
	return wv.Workers()
}

// Streams returns the streams' sizes at the last poll, by name.
func (v *View) Streams() []Stream {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return append([]Stream(nil), v.streams...)
}

// PollError is the last poll's error, "" when it succeeded.
func (v *View) PollError() string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.pollErr
}

// Failures returns the recent task failures, newest first.
func (v *View) Failures() []Failure {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]Failure, len(v.failures))
	for i, f := range v.failures {
		out[len(out)-1-i] = f
	}
	return out
}

// Jobs returns the job records that pass f, newest submission first.
// The records are shared: treat them as read-only.
func (v *View) Jobs(f jobs.Filter) []*jobs.Record {
	v.mu.RLock()
	out := make([]*jobs.Record, 0, len(v.jobs))
	for _, r := range v.jobs {
		if f.Match(r) {
			out = append(out, r)
		}
	}
	v.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].SubmittedMS != out[j].SubmittedMS {
			return out[i].SubmittedMS > out[j].SubmittedMS
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Job returns job id's record (read-only), or nil.
func (v *View) Job(id string) *jobs.Record {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.jobs[id]
}

// JobsByState counts the jobs in each state.
func (v *View) JobsByState() map[jobs.JobStatus]int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := map[jobs.JobStatus]int{}
	for _, r := range v.jobs {
		out[r.Status]++
	}
	return out
}

// UnreachableBackends lists the backends that some unfinished job cannot
// reach now (its record's UnreachableSinceMS is set), sorted.
func (v *View) UnreachableBackends() []string {
	v.mu.RLock()
	set := map[string]bool{}
	for _, r := range v.jobs {
		if r.UnreachableSinceMS > 0 && !r.Status.Terminal() {
			set[r.Backend] = true
		}
	}
	v.mu.RUnlock()
	return sortedKeys(set)
}

// Actors returns the actor records (read-only), by namespace and name.
func (v *View) Actors() []*actors.Record {
	v.mu.RLock()
	out := make([]*actors.Record, 0, len(v.actors))
	for _, r := range v.actors {
		out = append(out, r)
	}
	v.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// ActorsByState counts the actors in each state.
func (v *View) ActorsByState() map[string]int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := map[string]int{}
	for _, r := range v.actors {
		out[r.State]++
	}
	return out
}

// Namespaces lists the namespaces of the known jobs, sorted.
func (v *View) Namespaces() []string {
	v.mu.RLock()
	set := map[string]bool{}
	for _, r := range v.jobs {
		set[r.Namespace] = true
	}
	v.mu.RUnlock()
	return sortedKeys(set)
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// JobsOnWorker lists "<job id>[<task>]" for the job tasks whose current
// attempt runs (or is assigned) on worker id, from the job records.
func (v *View) JobsOnWorker() map[string][]string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := map[string][]string{}
	for _, r := range v.jobs {
		if r.Status.Terminal() {
			continue
		}
		for _, t := range r.Tasks {
			if t.Worker != "" && (t.State == jobs.TaskRunning || t.State == jobs.TaskAssigned) {
				out[t.Worker] = append(out[t.Worker], r.ID+"["+itoa(t.Index)+"]")
			}
		}
	}
	for _, l := range out {
		sort.Strings(l)
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }
