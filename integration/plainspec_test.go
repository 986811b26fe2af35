package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray"
	frayiris "github.com/frayhq/fray/dispatcher/iris"
	frayray "github.com/frayhq/fray/dispatcher/ray"
	"github.com/frayhq/fray/integration/backends"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/jobs"
)

// plainBackend is a backend reached with a ray?/iris? spec and no broker:
// every fray command is a new process with its own in-process broker, so
// only the backend holds the jobs.
type plainBackend struct {
	name string
	spec func(t *testing.T) string
	// state is the backend's own state of a job, as it names it.
	state func(t *testing.T, externalID string) string
	// killed is that state for a job the backend stopped.
	killed string
}

var plainBackends = []plainBackend{
	{
		name: "ray",
		spec: func(t *testing.T) string { return "ray?address=" + backends.Ray(t).Address + "&namespace=plain" },
		state: func(t *testing.T, id string) string {
			b, err := frayray.New(frayray.Options{Address: backends.Ray(t).Address})
			if err != nil {
				t.Fatal(err)
			}
			info, err := b.Info(frayt.Context(t, 30*time.Second), id)
			if err != nil {
				t.Fatalf("ray job %s: %v", id, err)
			}
			return info.Status
		},
		killed: "STOPPED",
	},
	{
		name: "iris",
		spec: func(t *testing.T) string { return "iris?controller=" + backends.Iris(t).Address },
		state: func(t *testing.T, id string) string {
			b, err := frayiris.New(frayiris.Options{Controller: backends.Iris(t).Address})
			if err != nil {
				t.Fatal(err)
			}
			st, err := b.JobStatus(frayt.Context(t, 30*time.Second), id)
			if err != nil {
				t.Fatalf("iris job %s: %v", id, err)
			}
			return st.GetJob().GetState().String()
		},
		killed: "JOB_STATE_KILLED",
	},
}

func forEachPlainBackend(t *testing.T, f func(t *testing.T, pb plainBackend, env []string)) {
	for _, pb := range plainBackends {
		t.Run(pb.name, func(t *testing.T) {
			t.Parallel()
			f(t, pb, []string{"FRAY_CLUSTER_SPEC=" + pb.spec(t)})
		})
	}
}

// plainName is a job name no earlier test run used (the backends remember).
func plainName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e9, rand.IntN(1000))
}

// sleepArg is a sleep duration unique to one test, to find its process by.
func sleepArg() string { return fmt.Sprintf("600.%06d", rand.IntN(1e6)) }

// ticking is a shell script that prints first, then a line every half
// second forever; tag (in a comment) finds its process. A job that prints
// and then goes quiet is not enough: with marin-iris 0.2.227 such a job's
// last line was seen missing from the log server for minutes while it ran.
func ticking(first, tag string) string {
	return first + "; while :; do echo tick; sleep 0.5; done # " + tag
}

// submitPlain runs `fray submit` in a new process and returns the job id.
func submitPlain(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, errOut, code := runFray(t, env, 3*time.Minute, append([]string{"submit"}, args...)...)
	if code != 0 {
		t.Fatalf("fray submit %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return lastLine(out)
}

// statusPlain runs `fray jobs status ID --json` in a new process.
func statusPlain(t *testing.T, env []string, id string) (*jobs.Record, error) {
	t.Helper()
	out, errOut, code := runFray(t, env, 2*time.Minute, "jobs", "status", id, "--json")
	if code != 0 {
		return nil, fmt.Errorf("exit %d: %s", code, strings.TrimSpace(errOut))
	}
	var r jobs.Record
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return nil, fmt.Errorf("decode %q: %w", out, err)
	}
	return &r, nil
}

// awaitStatus asks new processes for the job's status until it is want.
func awaitStatus(t *testing.T, env []string, id string, want jobs.JobStatus) *jobs.Record {
	t.Helper()
	var r *jobs.Record
	var err error
	frayt.Eventually(t, 3*time.Minute, id+" is "+string(want)+" seen from another process", func() bool {
		r, err = statusPlain(t, env, id)
		if err != nil {
			t.Logf("status %s: %v", id, err)
			return false
		}
		return r.Status == want
	})
	return r
}

// stopPlain runs `fray stop ID` in a new process and checks that it says
// STOPPED only once the backend reports the job killed.
func stopPlain(t *testing.T, pb plainBackend, env []string, id, externalID string) {
	t.Helper()
	out, errOut, code := runFray(t, env, 3*time.Minute, "stop", id)
	if code != 0 || strings.TrimSpace(out) != id+" STOPPED" {
		t.Fatalf("fray stop %s: exit %d\nstdout:\n%s\nstderr:\n%s", id, code, out, errOut)
	}
	if st := pb.state(t, externalID); st != pb.killed {
		t.Fatalf("fray stop said STOPPED while %s reports job %s %s, want %s", pb.name, externalID, st, pb.killed)
	}
}

// awaitGone waits until no process has arg in its command line.
func awaitGone(t *testing.T, arg string) {
	t.Helper()
	frayt.Eventually(t, time.Minute, "the processes of sleep "+arg+" are gone", func() bool {
		return len(backends.ProcessesWithArg(arg)) == 0
	})
}

// TestPlainSpecAnyProcessSeesFollowsAndStopsAJob submits with
// FRAY_CLUSTER_SPEC=ray?…/iris?… (no broker) from one process, then reads
// the status, list and logs, follows and stops the job from others.
func TestPlainSpecAnyProcessSeesFollowsAndStopsAJob(t *testing.T) {
	forEachPlainBackend(t, func(t *testing.T, pb plainBackend, env []string) {
		dur := sleepArg()
		argv := []string{"sh", "-c", ticking("echo plain-start $PLAIN_K; echo plain-second", dur)}
		id := submitPlain(t, env, append([]string{"--name", plainName("plain"), "--env", "PLAIN_K=v1", "--"}, argv...)...)

		rec := awaitStatus(t, env, id, jobs.StatusRunning)
		switch {
		case rec.ID != id || rec.Backend != pb.name || rec.ExternalID == "" || rec.Run == "":
			t.Fatalf("record %s backend %q external %q run %q; want %s on %s with its external id and run", rec.ID, rec.Backend, rec.ExternalID, rec.Run, id, pb.name)
		case !slices.Equal(rec.Request.Entrypoint.Argv, argv) || rec.Request.Environment.EnvVars["PLAIN_K"] != "v1":
			t.Fatalf("request %+v; want the submitted argv and env", rec.Request)
		case rec.StartedMS == 0 || rec.SubmittedMS == 0 || len(rec.Tasks) != 1 || rec.Tasks[0].State != jobs.TaskRunning:
			t.Fatalf("record started %d submitted %d tasks %+v; want the times and one running task", rec.StartedMS, rec.SubmittedMS, rec.Tasks)
		}

		out, errOut, code := runFray(t, env, 2*time.Minute, "jobs", "ls", "--json")
		var listed []*jobs.Record
		if code != 0 || json.Unmarshal([]byte(out), &listed) != nil {
			t.Fatalf("fray jobs ls: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if i := slices.IndexFunc(listed, func(r *jobs.Record) bool { return r.ID == id }); i < 0 || listed[i].Status != jobs.StatusRunning {
			t.Fatalf("fray jobs ls from another process does not list %s RUNNING:\n%s", id, out)
		}

		frayt.Eventually(t, 2*time.Minute, "fray logs from another process prints the job's lines", func() bool {
			out, errOut, code := runFray(t, env, 2*time.Minute, "logs", id)
			if code == 0 && strings.Contains(out, "plain-start v1\n") && strings.Contains(out, "plain-second\n") {
				return true
			}
			t.Logf("fray logs %s: exit %d\nstdout:\n%s\nstderr:\n%s", id, code, out, errOut)
			return false
		})
		follower := start(t, "fray", env, "logs", "-f", id)
		follower.waitLine("plain-second", 2*time.Minute)

		stopPlain(t, pb, env, id, rec.ExternalID)
		awaitGone(t, dur)
		select {
		case <-follower.done:
		case <-time.After(2 * time.Minute):
			t.Fatalf("fray logs -f still follows %s two minutes after it was stopped:\n%s", id, follower.Output())
		}
		var ee *exec.ExitError
		if !errors.As(follower.err, &ee) || ee.ExitCode() != 1 || !strings.Contains(follower.Output(), "ended STOPPED") {
			t.Fatalf("fray logs -f of a stopped job: %v; want exit 1 saying it ended STOPPED:\n%s", follower.err, follower.Output())
		}
		// Another process knows only what the backend says: its message.
		if r := awaitStatus(t, env, id, jobs.StatusStopped); r.Error == "" || r.FinishedMS == 0 {
			t.Fatalf("stopped record: error %q, finished %d; want the backend's message and end time", r.Error, r.FinishedMS)
		}
	})
}

// TestPlainSpecResubmitAdoptsALiveJobAndStartsANewRunOfAFinishedOne
// resubmits a job name from new processes: while its job is live on the
// backend the submit attaches to it (the job keeps its processes); with
// --no-adopt it is refused; once the job has finished the name runs anew,
// and its logs are the new run's alone.
func TestPlainSpecResubmitAdoptsALiveJobAndStartsANewRunOfAFinishedOne(t *testing.T) {
	forEachPlainBackend(t, func(t *testing.T, pb plainBackend, env []string) {
		name, dur := plainName("adopt"), sleepArg()
		id := submitPlain(t, env, "--name", name, "--", "sh", "-c", ticking("echo first-run", dur))
		first := awaitStatus(t, env, id, jobs.StatusRunning)
		frayt.Eventually(t, 2*time.Minute, "the first run's line is in its logs", func() bool {
			out, _, code := runFray(t, env, 2*time.Minute, "logs", id)
			return code == 0 && strings.Contains(out, "first-run\n")
		})
		frayt.Eventually(t, 2*time.Minute, "the first run's sleep runs", func() bool { return len(backends.ProcessesWithArg(dur)) > 0 })
		procs := backends.ProcessesWithArg(dur)

		out, errOut, code := runFray(t, env, 3*time.Minute, "submit", "--name", name, "--", "sh", "-c", "echo intruder")
		if code != 0 || lastLine(out) != id || !strings.Contains(errOut, "already live: attached") {
			t.Fatalf("resubmit of live %s: exit %d\nstdout:\n%s\nstderr:\n%s\nwant it adopted", id, code, out, errOut)
		}
		again, err := statusPlain(t, env, id)
		if err != nil {
			t.Fatal(err)
		}
		if again.Run != first.Run || again.ExternalID != first.ExternalID || again.Status != jobs.StatusRunning {
			t.Fatalf("after the adopting submit: run %q external %q %s; want the first run %q (%q) still RUNNING",
				again.Run, again.ExternalID, again.Status, first.Run, first.ExternalID)
		}
		if now := backends.ProcessesWithArg(dur); !slices.Equal(now, procs) {
			t.Fatalf("the job's processes changed under an adopting submit: %v, then %v", procs, now)
		}
		if _, errOut, code := runFray(t, env, 3*time.Minute, "submit", "--no-adopt", "--name", name, "--", "true"); code != 1 || !strings.Contains(errOut, "already exists") {
			t.Fatalf("--no-adopt resubmit of live %s: exit %d, stderr:\n%s\nwant exit 1, already exists", id, code, errOut)
		}

		stopPlain(t, pb, env, id, first.ExternalID)
		awaitGone(t, dur)

		out, errOut, code = runFray(t, env, 3*time.Minute, "submit", "--wait", "--name", name, "--", "sh", "-c", "echo second-run")
		if code != 0 || !strings.Contains(out, "second-run\n") {
			t.Fatalf("submit of finished %s: exit %d\nstdout:\n%s\nstderr:\n%s", id, code, out, errOut)
		}
		second := awaitStatus(t, env, id, jobs.StatusSucceeded)
		if second.Run == first.Run {
			t.Fatalf("the name's new job has the first run %q; want a new run", second.Run)
		}
		out, errOut, code = runFray(t, env, 2*time.Minute, "logs", id)
		if code != 0 || !strings.Contains(out, "second-run\n") || strings.Contains(out, "first-run") {
			t.Fatalf("fray logs of the new run: exit %d\nstdout:\n%s\nstderr:\n%s\nwant the second run's lines alone", code, out, errOut)
		}
	})
}

// TestPlainSpecSubmitWaitEndedBySIGTERMLeavesTheJobReachable ends a
// `fray submit --wait` with SIGTERM: the job keeps running on the backend,
// the exit message says how to reach it, and another process stops it.
func TestPlainSpecSubmitWaitEndedBySIGTERMLeavesTheJobReachable(t *testing.T) {
	forEachPlainBackend(t, func(t *testing.T, pb plainBackend, env []string) {
		dur := sleepArg()
		name := plainName("waited")
		p := start(t, "fray", env, "submit", "--wait", "--name", name, "--", "sh", "-c", ticking("echo waited-start", dur))
		p.waitLine("waited-start", 3*time.Minute)
		err := p.Term(3 * time.Minute)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Fatalf("fray submit --wait ended by SIGTERM: %v; want exit 130:\n%s", err, p.Output())
		}
		id := "/default/" + name
		if !strings.Contains(p.Output(), "\n"+id+"\n") || !strings.Contains(p.Output(), "keeps running") || !strings.Contains(p.Output(), "fray stop "+id) {
			t.Fatalf("exit message does not say the job keeps running and how to stop it:\n%s", p.Output())
		}
		rec := awaitStatus(t, env, id, jobs.StatusRunning)
		if len(backends.ProcessesWithArg(dur)) == 0 {
			t.Fatalf("the job's sleep %s is gone after the waiting process ended", dur)
		}
		stopPlain(t, pb, env, id, rec.ExternalID)
		awaitGone(t, dur)
	})
}

// TestPlainSpecGoClientReachesAJobAnotherProcessSubmitted does with the Go
// client (fray.Connect with the plain spec) what the CLI does: a handle on
// an id submitted by another process reads, follows and stops the job.
func TestPlainSpecGoClientReachesAJobAnotherProcessSubmitted(t *testing.T) {
	forEachPlainBackend(t, func(t *testing.T, pb plainBackend, env []string) {
		dur := sleepArg()
		id := submitPlain(t, env, "--name", plainName("goclient"), "--", "sh", "-c", ticking("echo go-start", dur))
		ctx := frayt.Context(t, 5*time.Minute)
		c, err := fray.Connect(ctx, strings.TrimPrefix(env[0], "FRAY_CLUSTER_SPEC="))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		h, err := c.Job(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := h.Info(ctx)
		if err != nil || rec.Backend != pb.name || rec.ExternalID == "" {
			t.Fatalf("Info of %s from another process: %+v, %v", id, rec, err)
		}
		fctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for line, err := range h.Follow(fctx) {
			if err != nil {
				t.Fatalf("Follow: %v", err)
			}
			if line.Text == "tick" { // go-start came first, and more follows
				break
			}
		}
		recs, err := c.ListJobs(ctx, jobs.Filter{Live: true})
		if err != nil || !slices.ContainsFunc(recs, func(r *jobs.Record) bool { return r.ID == id }) {
			t.Fatalf("ListJobs does not show live %s: %d records, %v", id, len(recs), err)
		}
		if err := h.Terminate(ctx); err != nil {
			t.Fatalf("Terminate: %v", err)
		}
		if st := pb.state(t, rec.ExternalID); st != pb.killed {
			t.Fatalf("Terminate returned while %s reports %s, want %s", pb.name, st, pb.killed)
		}
		if rec, err = h.Info(ctx); err != nil || rec.Status != jobs.StatusStopped {
			t.Fatalf("after Terminate: %+v, %v; want STOPPED", rec, err)
		}
		awaitGone(t, dur)
	})
}
