package dispatcher_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
)

// askingClient is a jobs client for which the backends are the record.
func (c *cluster) askingClient() *jobs.Client {
	c.t.Helper()
	jc, err := jobs.NewClient(c.ctx, c.nc, c.js, jobs.ClientOptions{Namespace: "test", Parent: "-", AskBackends: true})
	if err != nil {
		c.t.Fatal(err)
	}
	return jc
}

func TestAJobSubmittedElsewhereIsFoundFollowedAndStopped(t *testing.T) {
	fb := newFake("fake")
	fb.jobs["ext-1"] = &fakeJob{id: "/test/elsewhere", run: "r1", state: jobs.StatusRunning, log: []string{"hello"}}
	c := newCluster(t, dispatcher.Options{Backends: []dispatcher.Backend{fb}, PollInterval: 20 * time.Millisecond})
	h := c.askingClient().Handle("/test/elsewhere")
	r, err := h.Info(c.ctx)
	if err != nil {
		t.Fatalf("Info of a job only its backend knows: %v", err)
	}
	if r.Status != jobs.StatusRunning || r.Run != "r1" || r.ExternalID != "ext-1" || r.Backend != "fake" ||
		!slices.Equal(r.Request.Entrypoint.Argv, []string{"elsewhere"}) || len(r.Tasks) != 1 || r.Tasks[0].State != jobs.TaskRunning {
		t.Fatalf("record %+v; want the backend's job, RUNNING, run r1, with its request", r)
	}
	frayt.Eventually(t, 10*time.Second, "its line is mirrored", func() bool {
		l, _ := h.Logs(c.ctx, 0)
		return len(l) == 1 && l[0].Text == "hello"
	})
	if err := h.Terminate(c.ctx); err != nil {
		t.Fatal(err)
	}
	r = c.info(h)
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if r.Status != jobs.StatusStopped || fb.jobs["ext-1"].state != jobs.StatusStopped || fb.submits != 0 {
		t.Fatalf("record %s, backend %s, %d submits; want it stopped on the backend, never resubmitted", r.Status, fb.jobs["ext-1"].state, fb.submits)
	}
}

func TestASubmitAdoptsALiveJobOfItsNameOnTheBackend(t *testing.T) {
	fb := newFake("fake")
	fb.jobs["ext-1"] = &fakeJob{id: "/test/live", run: "r1", state: jobs.StatusRunning}
	c := newCluster(t, dispatcher.Options{Backends: []dispatcher.Backend{fb}, DefaultBackend: "fake", PollInterval: 20 * time.Millisecond})
	_, err := c.jc.Submit(c.ctx, jobs.JobRequest{Name: "live", Entrypoint: jobs.Command("other"), AdoptExisting: jobwire.Ptr(false)})
	var ae *jobs.AlreadyExistsError
	if !errors.As(err, &ae) {
		t.Fatalf("submit with adoption off of a name live on the backend: %v; want AlreadyExistsError", err)
	}
	h, err := c.jc.Submit(c.ctx, jobs.JobRequest{Name: "live", Entrypoint: jobs.Command("other")})
	if err != nil {
		t.Fatal(err)
	}
	if !h.Adopted() {
		t.Fatal("a submit of a name live on the backend was not adopted")
	}
	if r := c.info(h); r.Run != "r1" || r.ExternalID != "ext-1" {
		t.Fatalf("record run %q external %q; want the backend's run r1", r.Run, r.ExternalID)
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.submits != 0 || fb.stops != 0 {
		t.Fatalf("%d submits and %d stops on the backend; want the live job left alone", fb.submits, fb.stops)
	}
}

func TestListingAsksTheBackendsAndAFinishedJobGetsItsLogsWhenRead(t *testing.T) {
	fb := newFake("fake")
	fb.jobs["ext-1"] = &fakeJob{id: "/test/done", run: "r1", state: jobs.StatusSucceeded, log: []string{"out 1", "out 2"}}
	fb.jobs["ext-2"] = &fakeJob{id: "/other/live", run: "r2", state: jobs.StatusRunning}
	fb.jobs["ext-3"] = &fakeJob{state: jobs.StatusRunning} // not fray's
	c := newCluster(t, dispatcher.Options{Backends: []dispatcher.Backend{fb}, PollInterval: 20 * time.Millisecond})
	jc := c.askingClient()
	recs, err := jc.ListJobs(c.ctx, jobs.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.ID+" "+string(r.Status))
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"/other/live RUNNING", "/test/done SUCCEEDED"}) {
		t.Fatalf("listed %q", got)
	}
	h := jc.Handle("/test/done")
	lines, err := h.Logs(c.ctx, 0)
	if err != nil || len(lines) != 2 || lines[1].Text != "out 2" {
		t.Fatalf("logs of a finished job found on the backend: %v %v", lines, err)
	}
	if a := c.info(h).Tasks[0].Current(); a == nil || !a.Exited {
		t.Fatalf("attempt %+v; want Exited once its lines are stored", a)
	}
}
