package iris_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/dispatcher/internal/dispatchtest"
	"github.com/frayhq/fray/dispatcher/iris"
	"github.com/frayhq/fray/integration/backends"
	"github.com/frayhq/fray/jobs"
)

// These tests run fray's dispatcher against a real Iris cluster
// (integration/backends installs marin-iris and starts a local cluster).

// pauseLogs is an Iris backend whose first log fetch blocks until its
// dispatcher stops: a dispatcher that dies after submitting, before it
// mirrored anything.
type pauseLogs struct {
	*iris.Backend
	once   sync.Once
	paused chan struct{} // closed once Logs blocks
}

func (p *pauseLogs) Logs(ctx context.Context, ext string, cursor int64) ([]string, int64, error) {
	p.once.Do(func() { close(p.paused) })
	<-ctx.Done()
	return nil, cursor, ctx.Err()
}

func TestADispatcherRestartedRightAfterResubmittingAJobNameShowsNoneOfTheEarlierRunsLines(t *testing.T) {
	address := backends.Iris(t).Address
	user := fmt.Sprintf("mirror%d", rand.Uint32()) // the cluster keeps earlier tests' jobs
	newBackend := func() *iris.Backend {
		b, err := iris.New(iris.Options{Controller: address, User: user})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	opts := func(b dispatcher.Backend) dispatcher.Options {
		return dispatcher.Options{Backends: []dispatcher.Backend{b}, DefaultBackend: b.Name(), PollInterval: 200 * time.Millisecond}
	}
	c := dispatchtest.New(t)
	stop := c.Start(opts(newBackend()))
	h := c.Submit(jobs.JobRequest{Name: "reused", Entrypoint: jobs.Command("echo", "fray-first-run")})
	if r := c.Wait(h); r.Status != jobs.StatusSucceeded {
		t.Fatalf("first run: %s (%s)", r.Status, r.Error)
	}
	if got := c.Lines(h); !slices.Equal(got, []string{"fray-first-run"}) {
		t.Fatalf("first run's lines %q", got)
	}
	stop()

	// The name's next run: Iris replaces the first run's job, whose lines
	// its log server keeps under the same name.
	p := &pauseLogs{Backend: newBackend(), paused: make(chan struct{})}
	stop = c.Start(opts(p))
	h = c.Submit(jobs.JobRequest{Name: "reused", Entrypoint: jobs.Command("echo", "fray-second-run")})
	select {
	case <-p.paused:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the second run was not submitted to Iris: %+v", c.Info(h))
	}
	stop()

	c.Start(opts(newBackend()))
	if r := c.Wait(h); r.Status != jobs.StatusSucceeded {
		t.Fatalf("second run: %s (%s)", r.Status, r.Error)
	}
	if got := c.Lines(h); !slices.Equal(got, []string{"fray-second-run"}) {
		t.Fatalf("second run's lines %q; want only its own", got)
	}
}

func TestAJobIrisCannotScheduleWithinItsSchedulingTimeoutFailsSayingSo(t *testing.T) {
	b, err := iris.New(iris.Options{Controller: backends.Iris(t).Address, User: fmt.Sprintf("sched%d", rand.Uint32())})
	if err != nil {
		t.Fatal(err)
	}
	c := dispatchtest.New(t)
	c.Start(dispatcher.Options{Backends: []dispatcher.Backend{b}, DefaultBackend: b.Name(), PollInterval: 200 * time.Millisecond})
	// Iris refuses at launch a job no worker could ever hold; one that
	// waits for busy capacity is what a scheduling timeout is for.
	blocker := jobs.JobRequest{Name: "blocker", Entrypoint: jobs.Command("sleep", "60")}
	blocker.Resources.CPU = 2
	bh := c.Submit(blocker)
	c.Await(bh, 2*time.Minute, "blocker running", func(r *jobs.Record) bool { return r.Status == jobs.StatusRunning })
	t.Cleanup(func() { _ = bh.Terminate(context.Background()) })
	req := jobs.JobRequest{Name: "waits", Entrypoint: jobs.Command("echo", "never"), SchedulingTimeout: 2 * time.Second}
	req.Resources.CPU = 2
	h := c.Submit(req)
	r := c.Wait(h)
	if r.Status != jobs.StatusFailed || !strings.Contains(r.Error, "UNSCHEDULABLE") {
		t.Fatalf("job: %s (%s); want FAILED by Iris as UNSCHEDULABLE", r.Status, r.Error)
	}
}
