package ray_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/dispatcher/internal/dispatchtest"
	"github.com/frayhq/fray/dispatcher/ray"
	"github.com/frayhq/fray/integration/backends"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
)

// These tests run fray's dispatcher against a real Ray head
// (integration/backends installs Ray 2.60.0 and starts it).

func rayBackend(t *testing.T, address string) *ray.Backend {
	t.Helper()
	// A unique namespace: the shared head keeps every earlier test's jobs.
	// Quick retries, so that a poll of a head cut off fails within 2 s; but
	// six of them, since a loaded head answers a submission "500 No
	// available agent to submit job, please try again later" after waiting
	// 10 s for its job agent, and two tries made that answer the job's end.
	b, err := ray.New(ray.Options{Address: address, Namespace: fmt.Sprintf("mirror%d", rand.Uint32()),
		Retry: ray.Retry{Attempts: 6, Initial: 50 * time.Millisecond, Max: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestARayJobThatRanAndFinishedBetweenTwoPollsHasADuration(t *testing.T) {
	rb := rayBackend(t, backends.Ray(t).Address)
	c := dispatchtest.New(t)
	// An hour between polls: the dispatcher reads the job's status once,
	// right after submitting it, and next when a new dispatcher starts.
	o := dispatcher.Options{Backends: []dispatcher.Backend{rb}, DefaultBackend: rb.Name(), PollInterval: time.Hour}
	stop := c.Start(o)
	h := c.Submit(jobs.JobRequest{Name: "short", Entrypoint: jobs.Command("true")})
	c.Await(h, 3*time.Minute, "submitted to Ray", func(r *jobs.Record) bool { return r.ExternalID != "" })
	stop()
	r := c.Info(h)
	if r.Status != jobs.StatusPending || r.StartedMS != 0 {
		t.Fatalf("record %s started_ms %d right after the submission; want PENDING, not started", r.Status, r.StartedMS)
	}
	frayt.Eventually(t, 2*time.Minute, "Ray runs the job to its end", func() bool {
		st, err := rb.Status(c.Ctx, r.ExternalID)
		return err == nil && st.State.Terminal()
	})
	c.Start(o)
	r = c.Wait(h)
	if r.Status != jobs.StatusSucceeded {
		t.Fatalf("status %s (%s), want SUCCEEDED", r.Status, r.Error)
	}
	// Ray's clock: from accepting the submission (after fray recorded it)
	// to the job's end.
	if r.StartedMS < r.SubmittedMS || r.FinishedMS < r.StartedMS || r.FinishedMS > jobwire.NowMS() {
		t.Fatalf("submitted_ms %d, started_ms %d, finished_ms %d: want a duration within the job's life",
			r.SubmittedMS, r.StartedMS, r.FinishedMS)
	}
	a := r.Tasks[0].Current()
	if a == nil || a.State != jobs.TaskSucceeded || a.StartMS != r.StartedMS || a.EndMS != r.FinishedMS || !a.Exited {
		t.Fatalf("task attempt %+v; want one SUCCEEDED and exited, with the job's times", a)
	}
}

// pollCounter counts a backend's status polls.
type pollCounter struct {
	dispatcher.Backend
	polls atomic.Int64
}

func (p *pollCounter) Status(ctx context.Context, ext string) (dispatcher.RemoteStatus, error) {
	p.polls.Add(1)
	return p.Backend.Status(ctx, ext)
}

func TestALostRayHeadShowsOnTheJobUntilContactReturnsAndIsLoggedOnceEachWay(t *testing.T) {
	proxy := frayt.NewProxy(t, backends.Ray(t).Address)
	pc := &pollCounter{Backend: rayBackend(t, proxy.URL)}
	c := dispatchtest.New(t)
	c.Start(dispatcher.Options{Backends: []dispatcher.Backend{pc}, DefaultBackend: pc.Name(), PollInterval: 200 * time.Millisecond})
	dur := fmt.Sprintf("600.%06d", rand.IntN(1e6)) // marks this job's process
	h := c.Submit(jobs.JobRequest{Name: "cut-off", Entrypoint: jobs.Command("sleep", dur)})
	c.Await(h, 2*time.Minute, "RUNNING", func(r *jobs.Record) bool { return r.Status == jobs.StatusRunning })

	cut := time.Now()
	proxy.Cut()
	r := c.Await(h, 30*time.Second, "shows the lost contact", func(r *jobs.Record) bool { return r.UnreachableSinceMS != 0 })
	since := time.UnixMilli(r.UnreachableSinceMS)
	if r.Status != jobs.StatusRunning || since.Before(cut.Truncate(time.Millisecond)) || since.After(time.Now()) ||
		!strings.Contains(r.UnreachableError, "connection refused") {
		t.Fatalf("record %s, unreachable since %s (cut at %s): %q; want RUNNING, since the cut, the connection error",
			r.Status, since, cut, r.UnreachableError)
	}
	n := pc.polls.Load()
	frayt.Eventually(t, 30*time.Second, "three more polls fail", func() bool { return pc.polls.Load() >= n+3 })
	if w := c.Log.Count(slog.LevelWarn, ""); w != 1 || c.Log.Count(slog.LevelWarn, "lost contact") != 1 {
		t.Fatalf("%d warnings; want one, that contact was lost:\n%s", w, c.Log.Dump())
	}

	proxy.Restore()
	r = c.Await(h, 30*time.Second, "contact restored", func(r *jobs.Record) bool {
		return r.UnreachableSinceMS == 0 && r.UnreachableError == ""
	})
	if r.Status != jobs.StatusRunning {
		t.Fatalf("status %s (%s) after contact returned, want RUNNING", r.Status, r.Error)
	}
	frayt.Eventually(t, 10*time.Second, "contact restored is logged", func() bool {
		return c.Log.Count(slog.LevelInfo, "contact with backend restored") == 1
	})
	if w := c.Log.Count(slog.LevelWarn, ""); w != 1 {
		t.Fatalf("%d warnings; want still one:\n%s", w, c.Log.Dump())
	}
	if err := h.Terminate(c.Ctx); err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, time.Minute, "no sleep "+dur+" process remains", func() bool {
		return len(backends.ProcessesWithArg(dur)) == 0
	})
}
