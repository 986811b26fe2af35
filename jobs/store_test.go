package jobs_test

import (
	"errors"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// openStore opens the job store on a fresh provisioned server.
func openStore(t *testing.T) (*jobs.Store, jetstream.JetStream) {
	t.Helper()
	_, js := frayt.Connect(t, frayt.Server(t).ClientURL())
	st, err := jobs.OpenStore(frayt.Context(t, 10*time.Second), js)
	if err != nil {
		t.Fatal(err)
	}
	return st, js
}

func TestStoreCompareAndSetKeepsTerminalStatesFinal(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	st, _ := openStore(t)
	req := jobs.JobRequest{Name: "j", Entrypoint: jobs.Command("true")}
	rec := jobs.NewRecord("/ns/j", "", &req)
	if _, _, adopted, err := st.CreateOrAdopt(ctx, rec, true); err != nil || adopted {
		t.Fatal(err, adopted)
	}
	// A second submission of a live name adopts, or refuses.
	again := jobs.NewRecord("/ns/j", "", &req)
	if got, _, adopted, err := st.CreateOrAdopt(ctx, again, true); err != nil || !adopted || got.Run != rec.Run {
		t.Fatalf("adopt: %v %v", err, adopted)
	}
	if _, _, _, err := st.CreateOrAdopt(ctx, again, false); !errors.Is(err, jobs.ErrAlreadyExists) {
		t.Fatalf("refuse: %v", err)
	}
	// A stale writer loses the race.
	_, rev, _ := st.Get(ctx, "/ns/j")
	if _, _, err := st.Update(ctx, "/ns/j", func(r *jobs.Record) error { r.Status = jobs.StatusRunning; return nil }); err != nil {
		t.Fatal(err)
	}
	stale := *rec
	stale.Status = jobs.StatusFailed
	if _, err := st.Put(ctx, &stale, rec, rev); !jobs.IsConflict(err) {
		t.Fatalf("stale write: %v", err)
	}
	if _, _, err := st.Update(ctx, "/ns/j", func(r *jobs.Record) error { return r.Finish(jobs.StatusSucceeded, "") }); err != nil {
		t.Fatal(err)
	}
	_, _, err := st.Update(ctx, "/ns/j", func(r *jobs.Record) error { r.Status = jobs.StatusRunning; return nil })
	if !errors.Is(err, jobs.ErrTerminal) {
		t.Fatalf("terminal changed: %v", err)
	}
	// A finished name can be submitted again: a new run replaces it.
	fresh := jobs.NewRecord("/ns/j", "", &req)
	got, _, adopted, err := st.CreateOrAdopt(ctx, fresh, true)
	if err != nil || adopted || got.Run == rec.Run || got.Status != jobs.StatusPending {
		t.Fatalf("resubmit: %v %v", err, adopted)
	}
	list, err := st.List(ctx, jobs.Filter{Namespace: "ns"})
	if err != nil || len(list) != 1 {
		t.Fatalf("list %v %v", list, err)
	}
}

// A finished job's name submitted again starts with no logs: the old run's
// lines must not mix with the new run's.
func TestReusingAFinishedJobsNameDropsItsLogs(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	st, js := openStore(t)
	req := jobs.JobRequest{Name: "again", Entrypoint: jobs.Command("true")}
	if _, _, _, err := st.CreateOrAdopt(ctx, jobs.NewRecord("/ns/again", "", &req), true); err != nil {
		t.Fatal(err)
	}
	lw := jobs.NewLogWriter(js, "/ns/again", 0, 1)
	for _, l := range []string{"old run line 1", "old run line 2"} {
		if err := lw.Line(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if err := lw.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if lines, err := jobs.TailLogs(ctx, js, "/ns/again", 10); err != nil || len(lines) != 2 {
		t.Fatalf("old run's logs: %v %v", lines, err)
	}
	// While the job lives, a second submission adopts it and keeps its logs.
	if _, _, adopted, err := st.CreateOrAdopt(ctx, jobs.NewRecord("/ns/again", "", &req), true); err != nil || !adopted {
		t.Fatal(err, adopted)
	}
	if lines, _ := jobs.TailLogs(ctx, js, "/ns/again", 10); len(lines) != 2 {
		t.Fatalf("adopting dropped the live job's logs: %v", lines)
	}
	if _, _, err := st.Update(ctx, "/ns/again", func(r *jobs.Record) error { return r.Finish(jobs.StatusFailed, "boom") }); err != nil {
		t.Fatal(err)
	}
	if _, _, adopted, err := st.CreateOrAdopt(ctx, jobs.NewRecord("/ns/again", "", &req), true); err != nil || adopted {
		t.Fatal(err, adopted)
	}
	if lines, err := jobs.TailLogs(ctx, js, "/ns/again", 10); err != nil || len(lines) != 0 {
		t.Fatalf("new run starts with %d old lines (%v)", len(lines), err)
	}
}
