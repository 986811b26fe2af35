package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/jobs"
)

// fakeBackend is an external backend in memory: a job runs until the test
// finishes it, and its log grows as the test appends.
type fakeBackend struct {
	mu      sync.Mutex
	name    string
	jobs    map[string]*fakeJob
	submits int
	stops   int
	finds   int
	polls   int      // Status calls
	runs    []string // the run of each Submit
	// graceful makes Stop only ask: the job keeps running (as a process
	// in its SIGTERM handler does) until the test finishes it.
	graceful bool
}

type fakeJob struct {
	id    string
	run   string
	state jobs.JobStatus
	msg   string
	log   []string
	// stopAsked is set by Stop.
	stopAsked bool
}

func newFake(name string) *fakeBackend { return &fakeBackend{name: name, jobs: map[string]*fakeJob{}} }

func (f *fakeBackend) Name() string { return f.name }

func (f *fakeBackend) Validate(req *jobs.JobRequest) error {
	if req.Entrypoint.Func != "" {
		return fmt.Errorf("%w: %s cannot run Func entrypoints", dispatcher.ErrUnsupported, f.name)
	}
	return nil
}

func (f *fakeBackend) Submit(ctx context.Context, jobID, run string, req *jobs.JobRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs = append(f.runs, run)
	ext := "ext-" + strings.ReplaceAll(jobID, "/", "_")
	if f.jobs[ext] == nil {
		f.submits++
		f.jobs[ext] = &fakeJob{id: jobID, run: run, state: jobs.StatusRunning, log: []string{"started " + strings.Join(req.Entrypoint.Argv, " ")}}
	}
	return ext, nil
}

func (f *fakeBackend) Status(ctx context.Context, ext string) (dispatcher.RemoteStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	j := f.jobs[ext]
	if j == nil {
		return dispatcher.RemoteStatus{}, fmt.Errorf("fake: %s: %w", ext, dispatcher.ErrJobNotFound)
	}
	return dispatcher.RemoteStatus{State: j.state, Message: j.msg}, nil
}

func (f *fakeBackend) Logs(ctx context.Context, ext string, cursor int64) ([]string, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[ext]
	if j == nil {
		return nil, cursor, errors.New("no such job")
	}
	return append([]string(nil), j.log[cursor:]...), int64(len(j.log)), nil
}

func (f *fakeBackend) Stop(ctx context.Context, ext string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops++
	if j := f.jobs[ext]; j != nil && !j.state.Terminal() {
		j.stopAsked = true
		if !f.graceful {
			j.state = jobs.StatusStopped
		}
	}
	return nil
}

func (f *fakeBackend) List(ctx context.Context) ([]dispatcher.RemoteJob, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []dispatcher.RemoteJob
	for ext, j := range f.jobs {
		out = append(out, j.remote(ext))
	}
	return out, nil
}

// Find makes the fake a dispatcher.Finder.
func (f *fakeBackend) Find(ctx context.Context, jobID string) (*dispatcher.RemoteJob, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finds++
	for ext, j := range f.jobs {
		if j.id == jobID {
			rj := j.remote(ext)
			return &rj, nil
		}
	}
	return nil, fmt.Errorf("fake: %s: %w", jobID, dispatcher.ErrJobNotFound)
}

func (j *fakeJob) remote(ext string) dispatcher.RemoteJob {
	st := dispatcher.RemoteStatus{State: j.state, Message: j.msg}
	if j.state != jobs.StatusPending {
		st.StartedMS = time.Now().Add(-time.Minute).UnixMilli() // it ran
	}
	return dispatcher.RemoteJob{ExternalID: ext, JobID: j.id, Run: j.run, Status: st,
		Request: &jobs.JobRequest{Entrypoint: jobs.Command("elsewhere")}}
}

func (f *fakeBackend) do(fn func(map[string]*fakeJob)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.jobs)
}

func TestExternalBackendRunsMirrorsLogsAndStatus(t *testing.T) {
	fb := newFake("fake")
	c := newCluster(t, dispatcher.Options{Backends: []dispatcher.Backend{fb}, PollInterval: 20 * time.Millisecond})
	req := sh("ext", "echo hi")
	req.Resources.TargetCluster = "fake"
	h := c.submit(req)
	frayt.Eventually(t, 10*time.Second, "running", func() bool { return c.info(h).Status == jobs.StatusRunning })
	fb.do(func(m map[string]*fakeJob) {
		for _, j := range m {
			j.log = append(j.log, "line 1", "line 2")
		}
	})
	frayt.Eventually(t, 10*time.Second, "3 lines mirrored", func() bool {
		l, _ := h.Logs(c.ctx, 0)
		return len(l) == 3
	})
	fb.do(func(m map[string]*fakeJob) {
		for _, j := range m {
			j.log = append(j.log, "line 3")
			j.state, j.msg = jobs.StatusFailed, "exit 2"
		}
	})
	r := c.wait(h)
	if r.Status != jobs.StatusFailed || r.Error != "exit 2" || r.Backend != "fake" {
		t.Fatalf("record %s %q %s", r.Status, r.Error, r.Backend)
	}
	l, err := h.Logs(c.ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range l {
		got = append(got, x.Text)
	}
	if strings.Join(got, "|") != "started sh -c echo hi|line 1|line 2|line 3" {
		t.Fatalf("logs %q", got)
	}
}

func TestExternalBackendRefusalFailsTheJobAndTheSubmit(t *testing.T) {
	fb := newFake("fake")
	c := newCluster(t, dispatcher.Options{Backends: []dispatcher.Backend{fb}, DefaultBackend: "fake"})
	_, err := c.jc.Submit(c.ctx, jobs.JobRequest{Name: "fn", Entrypoint: jobs.Func("train", nil)})
	if !errors.Is(err, jobs.ErrRejected) || !strings.Contains(err.Error(), "cannot run Func") {
		t.Fatalf("err %v", err)
	}
	r := c.info(c.jc.Handle("/test/fn"))
	if r.Status != jobs.StatusFailed || !strings.Contains(r.Error, "cannot run Func") {
		t.Fatalf("record %s %q", r.Status, r.Error)
	}
	_, err = c.jc.Submit(c.ctx, jobs.JobRequest{Name: "nowhere", Entrypoint: jobs.Command("true"), Resources: jobs.ResourceConfig{TargetCluster: "mars"}})
	if !errors.Is(err, jobs.ErrRejected) || !strings.Contains(err.Error(), "mars") {
		t.Fatalf("unknown target: %v", err)
	}
}

func TestExternalJobTerminateStopsItOnTheBackend(t *testing.T) {
	fb := newFake("fake")
	c := newCluster(t, dispatcher.Options{Backends: []dispatcher.Backend{fb}, DefaultBackend: "fake", PollInterval: 20 * time.Millisecond})
	h := c.submit(sh("long", "sleep 600"))
	frayt.Eventually(t, 10*time.Second, "running", func() bool { return c.info(h).Status == jobs.StatusRunning })
	if err := h.Terminate(c.ctx); err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 10*time.Second, "backend stopped", func() bool {
		fb.mu.Lock()
		defer fb.mu.Unlock()
		return fb.stops == 1 && fb.submits == 1
	})
}

func TestExternalJobResumesAfterADispatcherRestartWithoutDuplicateLogs(t *testing.T) {
	fb := newFake("fake")
	c := newCluster(t, dispatcher.Options{Backends: []dispatcher.Backend{fb}, DefaultBackend: "fake", PollInterval: 20 * time.Millisecond})
	h := c.submit(sh("resume", "work"))
	frayt.Eventually(t, 10*time.Second, "first line mirrored", func() bool {
		l, _ := h.Logs(c.ctx, 0)
		return len(l) == 1
	})
	c.stopDispatcher()
	fb.do(func(m map[string]*fakeJob) {
		for _, j := range m {
			j.log = append(j.log, "while away")
			j.state = jobs.StatusSucceeded
		}
	})
	c.startDispatcher(c.opts)
	if r := c.wait(h); r.Status != jobs.StatusSucceeded {
		t.Fatalf("%s %s", r.Status, r.Error)
	}
	l, err := h.Logs(c.ctx, 0)
	if err != nil || len(l) != 2 || l[1].Text != "while away" {
		t.Fatalf("logs %v %v", l, err)
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.submits != 1 {
		t.Fatalf("submitted %d times", fb.submits)
	}
}

func TestAnExternalJobItsBackendNoLongerKnowsFailsPromptly(t *testing.T) {
	fb := newFake("fake")
	c := newCluster(t, dispatcher.Options{Backends: []dispatcher.Backend{fb}, DefaultBackend: "fake", PollInterval: 20 * time.Millisecond})
	h := c.submit(sh("forgotten", "sleep 600"))
	frayt.Eventually(t, 10*time.Second, "running", func() bool { return c.info(h).Status == jobs.StatusRunning })
	fb.do(func(m map[string]*fakeJob) { clear(m) }) // the head restarted without its job table
	r := c.wait(h)
	if r.Status != jobs.StatusFailed || !strings.Contains(r.Error, "no longer knows job") {
		t.Fatalf("record %s %q; want FAILED, no longer known", r.Status, r.Error)
	}
}

func TestAnExternalJobThatSucceededHasNoErrorAndItsTasksSucceeded(t *testing.T) {
	fb := newFake("fake")
	c := newCluster(t, dispatcher.Options{Backends: []dispatcher.Backend{fb}, DefaultBackend: "fake", PollInterval: 20 * time.Millisecond})
	h := c.submit(sh("fine", "true"))
	frayt.Eventually(t, 10*time.Second, "running", func() bool { return c.info(h).Status == jobs.StatusRunning })
	fb.do(func(m map[string]*fakeJob) {
		for _, j := range m {
			j.state, j.msg = jobs.StatusSucceeded, "Job finished successfully."
		}
	})
	r := c.wait(h)
	if r.Status != jobs.StatusSucceeded || r.Error != "" || len(r.Tasks) != 1 || r.Tasks[0].State != jobs.TaskSucceeded {
		t.Fatalf("record %s error %q tasks %+v", r.Status, r.Error, r.Tasks)
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if len(fb.runs) != 1 || fb.runs[0] != r.Run || r.Run == "" {
		t.Fatalf("Submit saw runs %q, want the record's run %q", fb.runs, r.Run)
	}
}

// follow collects what h.Follow yields until it ends or ctx does.
func follow(ctx context.Context, h *jobs.Handle) <-chan []string {
	out := make(chan []string, 1)
	go func() {
		var got []string
		for l, err := range h.Follow(ctx) {
			if err != nil {
				got = append(got, "error: "+err.Error())
				break
			}
			got = append(got, l.Text)
		}
		out <- got
	}()
	return out
}

func (f *fakeBackend) polled() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.polls
}

func (f *fakeBackend) stopAsked() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs {
		if j.stopAsked {
			return true
		}
	}
	return false
}

func TestFollowingAStoppedExternalJobIncludesWhatItPrintsWhileShuttingDown(t *testing.T) {
	fb := newFake("fake")
	fb.graceful = true
	c := newCluster(t, dispatcher.Options{Backends: []dispatcher.Backend{fb}, DefaultBackend: "fake", PollInterval: 20 * time.Millisecond})
	h := c.submit(sh("trap", "trap 'echo got TERM' TERM; sleep 600"))
	frayt.Eventually(t, 10*time.Second, "running", func() bool { return c.info(h).Status == jobs.StatusRunning })
	fctx, cancel := context.WithTimeout(c.ctx, 20*time.Second)
	defer cancel()
	lines := follow(fctx, h)
	terminated := make(chan error, 1)
	go func() { terminated <- h.Terminate(c.ctx) }()
	frayt.Eventually(t, 10*time.Second, "stop asked on the backend", fb.stopAsked)
	// STOPPED means stopped: while the backend still runs the job, the
	// record is live, with the stop pending, and Terminate waits.
	if r := c.info(h); r.Status != jobs.StatusRunning || r.StopRequestedMS == 0 || r.StopReason == "" {
		t.Fatalf("record %s, stop requested at %d (%q) while the backend runs the job; want RUNNING with the stop pending", r.Status, r.StopRequestedMS, r.StopReason)
	}
	select {
	case err := <-terminated:
		t.Fatalf("Terminate returned (%v) before the backend stopped the job", err)
	default:
	}
	fb.do(func(m map[string]*fakeJob) {
		for _, j := range m {
			j.log = append(j.log, "got TERM")
			j.state = jobs.StatusStopped
		}
	})
	if err := <-terminated; err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	got := <-lines
	if fctx.Err() != nil {
		t.Fatalf("Follow did not end: %q", got)
	}
	if strings.Join(got, "|") != "started sh -c trap 'echo got TERM' TERM; sleep 600|got TERM" {
		t.Fatalf("followed %q; want the line printed after the stop", got)
	}
	r := c.info(h)
	if r.Status != jobs.StatusStopped || r.Error != "terminated by user" || len(r.Tasks) != 1 {
		t.Fatalf("record %s (%q) tasks %+v; want STOPPED, terminated by user", r.Status, r.Error, r.Tasks)
	}
	if a := r.Tasks[0].Current(); a == nil || !a.Exited || a.Worker != "fake" || a.StartMS == 0 || a.State != jobs.TaskStopped {
		t.Fatalf("attempt %+v; want exited on fake, STOPPED", a)
	}
}

func TestAStopTheBackendHasNotCarriedOutLeavesTheJobLiveUntilItDoes(t *testing.T) {
	fb := newFake("fake")
	fb.graceful = true
	c := newCluster(t, dispatcher.Options{Backends: []dispatcher.Backend{fb}, DefaultBackend: "fake", PollInterval: 20 * time.Millisecond, StopWait: 500 * time.Millisecond})
	h := c.submit(sh("stuck", "sleep 600"))
	frayt.Eventually(t, 10*time.Second, "running", func() bool { return c.info(h).Status == jobs.StatusRunning })
	tctx, cancel := context.WithTimeout(c.ctx, time.Second)
	defer cancel()
	if err := h.Terminate(tctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Terminate of a job the backend keeps running: %v; want its deadline to run out", err)
	}
	if !fb.stopAsked() {
		t.Fatal("the backend was not asked to stop the job")
	}
	fb.do(func(m map[string]*fakeJob) {
		for _, j := range m {
			j.log = append(j.log, "still here")
		}
	})
	fctx, cancel := context.WithTimeout(c.ctx, 15*time.Second)
	defer cancel()
	lines := follow(fctx, h)
	// Far past StopWait (30 polls), the job is still live: only its
	// backend ends it.
	polls := fb.polled()
	frayt.Eventually(t, 10*time.Second, "30 more status polls", func() bool { return fb.polled() >= polls+30 })
	if r := c.info(h); r.Status != jobs.StatusRunning || r.StopRequestedMS == 0 {
		t.Fatalf("record %s (stop requested at %d) while the backend runs the job; want RUNNING, stop pending", r.Status, r.StopRequestedMS)
	}
	fb.do(func(m map[string]*fakeJob) {
		for _, j := range m {
			j.state = jobs.StatusStopped
		}
	})
	got := <-lines
	if fctx.Err() != nil {
		t.Fatalf("Follow did not end: %q", got)
	}
	if len(got) != 2 || got[1] != "still here" {
		t.Fatalf("followed %q", got)
	}
	r := c.info(h)
	if a := r.Tasks[0].Current(); r.Status != jobs.StatusStopped || a == nil || !a.Exited {
		t.Fatalf("record %s attempt %+v; want STOPPED, exited", r.Status, a)
	}
}

func TestAnExternalJobThatFinishesOnItsOwnIsExitedWithItsLastLines(t *testing.T) {
	fb := newFake("fake")
	c := newCluster(t, dispatcher.Options{Backends: []dispatcher.Backend{fb}, DefaultBackend: "fake", PollInterval: 20 * time.Millisecond})
	h := c.submit(sh("done", "echo bye"))
	frayt.Eventually(t, 10*time.Second, "running", func() bool { return c.info(h).Status == jobs.StatusRunning })
	fb.do(func(m map[string]*fakeJob) {
		for _, j := range m {
			j.log = append(j.log, "bye")
			j.state = jobs.StatusSucceeded
		}
	})
	fctx, cancel := context.WithTimeout(c.ctx, 15*time.Second)
	defer cancel()
	got := <-follow(fctx, h)
	if len(got) != 2 || got[1] != "bye" {
		t.Fatalf("followed %q", got)
	}
	r := c.info(h)
	if a := r.Tasks[0].Current(); r.Status != jobs.StatusSucceeded || a == nil || !a.Exited || a.State != jobs.TaskSucceeded {
		t.Fatalf("record %s attempt %+v", r.Status, a)
	}
}
