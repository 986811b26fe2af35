package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

func TestFollowDeliversAHundredThousandLinesInOrder(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 2, nil)
	const n = 100000
	h := c.submit(sh("chatty", "seq 1 "+strconv.Itoa(n)))
	if got := c.followNumbers(h, nil); got != n {
		t.Fatalf("got %d lines, want %d", got, n)
	}
	tail, err := h.Logs(c.ctx, 3)
	if err != nil || len(tail) != 3 || tail[2].Text != strconv.Itoa(n) {
		t.Fatalf("tail %v %v", tail, err)
	}
}

// A worker whose lease lapses for less than the dispatcher's ExpiryGrace (a
// renewal late under load) keeps its running job: the job is not preempted
// and Follow gives every line once, in order. (The test harness once never
// took such a lease back: 5 s later the dispatcher lost the worker and had
// the job's process killed in the middle of a write, whose unended last
// line then read "6602" for "66022".)
func TestFollowLosesNoLineWhenTheWorkerLeaseLapsesWithinTheGrace(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	w := c.addWorker("w1", 2, nil)
	kv, err := c.js.KeyValue(c.ctx, broker.BucketWorkers)
	if err != nil {
		t.Fatal(err)
	}
	leaseHeld := func() bool {
		_, err := kv.Get(c.ctx, "w1")
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted) {
			t.Fatal(err)
		}
		return err == nil
	}
	resume := filepath.Join(t.TempDir(), "resume")
	const half, n = 50000, 100000
	h := c.submit(sh("lapse", fmt.Sprintf("seq 1 %d; while [ ! -e %s ]; do sleep 0.05; done; seq %d %d", half, resume, half+1, n)))
	got := c.followNumbers(h, func(line int) {
		if line != half {
			return
		}
		w.leasePaused.Store(true)
		frayt.Eventually(t, 10*time.Second, "w1's lease key expired", func() bool { return !leaseHeld() })
		w.leasePaused.Store(false)
		frayt.Eventually(t, 10*time.Second, "w1 took its lease back", leaseHeld)
		if err := os.WriteFile(resume, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	})
	if got != n {
		t.Fatalf("got %d lines, want %d", got, n)
	}
	r := c.info(h)
	if r.Status != jobs.StatusSucceeded || len(r.Tasks[0].Attempts) != 1 {
		t.Fatalf("job %s, task %+v: want SUCCEEDED at its first attempt", r.Status, r.Tasks[0])
	}
}

// followNumbers follows job h, whose output is the numbers from 1, to its
// end and returns how many lines came; it fails the test at the first line
// that is not the next number of the first attempt. after, when set, runs
// after each line with its number.
func (c *cluster) followNumbers(h *jobs.Handle, after func(line int)) int {
	c.t.Helper()
	next := 1
	for line, err := range h.Follow(c.ctx) {
		if err != nil {
			c.t.Fatal(err)
		}
		if line.Text != strconv.Itoa(next) || line.Attempt != 0 {
			// Say which line of which attempt it was, and what became of the job.
			c.t.Fatalf("line %d is %q (line %d of attempt %d); job %+v", next, line.Text, line.N, line.Attempt, c.info(h).Tasks)
		}
		if after != nil {
			after(next)
		}
		next++
	}
	return next - 1
}

func TestFuncEntrypointRunsARegisteredFunction(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 2, nil, jobs.RunnerOptions{Funcs: map[string]jobs.JobFunc{
		"greet": func(ctx context.Context, env jobs.FuncEnv) error {
			fmt.Fprintf(env.Log, "hello %s from task %d\n", env.Arg, env.Task)
			return nil
		},
	}})
	h := c.submit(jobs.JobRequest{Name: "fn", Entrypoint: jobs.Func("greet", []byte("fray"))})
	if r := c.wait(h); r.Status != jobs.StatusSucceeded {
		t.Fatalf("%s: %s", r.Status, r.Error)
	}
	l, err := h.Logs(c.ctx, 0)
	if err != nil || len(l) != 1 || l[0].Text != "hello fray from task 0" {
		t.Fatalf("logs %v %v", l, err)
	}
	r := c.wait(c.submit(jobs.JobRequest{Name: "nofn", Entrypoint: jobs.Func("missing", nil)}))
	if r.Status != jobs.StatusFailed {
		t.Fatalf("missing func: %s", r.Status)
	}
}

func TestBinaryOutputIsLoggedAsValidText(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 2, nil)
	h := c.submit(sh("binary", `printf 'a\377b\nlong'`))
	c.wait(h)
	l, err := h.Logs(c.ctx, 0)
	if err != nil || len(l) != 2 || l[0].Text != "a\uFFFDb" || l[1].Text != "long" {
		t.Fatalf("logs %+v %v", l, err)
	}
}

func TestFollowOfAStoppedJobIncludesWhatItPrintsWhileShuttingDown(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 2, nil) // grace 2 s
	h := c.submit(sh("checkpointer", `trap 'sleep 1; echo saved-checkpoint; exit 0' TERM; echo started; while true; do sleep 0.1; done`))
	lines := make(chan string, 100)
	followed := make(chan error, 1)
	go func() {
		defer close(lines)
		for line, err := range h.Follow(c.ctx) {
			if err != nil {
				followed <- err
				return
			}
			lines <- line.Text
		}
		followed <- nil
	}()
	if l := <-lines; l != "started" {
		t.Fatalf("first line %q", l)
	}
	frayt.Eventually(t, 10*time.Second, "the task is recorded RUNNING", func() bool {
		return c.info(h).Tasks[0].State == jobs.TaskRunning
	})
	if err := h.Terminate(c.ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	for l := range lines {
		got = append(got, l)
	}
	if err := <-followed; err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || got[len(got)-1] != "saved-checkpoint" { // sh may first say "Terminated"
		t.Fatalf("after the stop, Follow gave %q; want it to end with the line printed on SIGTERM", got)
	}
	r := c.info(h)
	if a := r.Tasks[0].Current(); r.Status != jobs.StatusStopped || a == nil || !a.Exited || a.ExitCode != 0 {
		t.Fatalf("record %s, attempt %+v: want STOPPED with the process's exit recorded", r.Status, a)
	}
}
