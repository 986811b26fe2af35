package jobs_test

import (
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
)

// exited returns the job's exited events so far.
func (r *runnerRig) exited(job string) []jobwire.TaskEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []jobwire.TaskEvent
	for _, ev := range r.events {
		if ev.Job == job && ev.Kind == jobwire.EventExited {
			out = append(out, ev)
		}
	}
	return out
}

// A dispatcher that never acts on an exit report (it was lost, or the
// dispatcher was down) gets it again while the assignment stays listed.
func TestAnExitReportNotActedOnIsSentAgainWhileItsAssignmentIsListed(t *testing.T) {
	o := jobs.RunnerOptions{CPU: 2}
	jobs.SetExitRepeat(&o, 100*time.Millisecond)
	rig := startRunner(t, o)
	task := gpuTask("/t/exits", 0, "exit 3")
	rig.assign(task)
	first := rig.waitEvent(task.Job, jobwire.EventExited)
	if first.ExitCode != 3 {
		t.Fatalf("exit code %d, want 3", first.ExitCode)
	}
	var evs []jobwire.TaskEvent
	frayt.Eventually(t, 10*time.Second, "the exit report sent again", func() bool {
		evs = rig.exited(task.Job)
		return len(evs) >= 3
	})
	for _, ev := range evs[1:] {
		if ev.Run != first.Run || ev.Attempt != first.Attempt || ev.ExitCode != first.ExitCode || ev.Worker != first.Worker {
			t.Fatalf("repeated report %+v differs from the first %+v", ev, *first)
		}
	}
}
