package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/dispatcher"
	frayiris "github.com/frayhq/fray/dispatcher/iris"
	frayray "github.com/frayhq/fray/dispatcher/ray"
	"github.com/frayhq/fray/integration/backends"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/jobs"
)

// TestMain (harness_test.go) runs the tests through backends.Main, which
// keeps one Ray head and one Iris cluster per test binary and stops them
// (failing the run if a process survives) after the last test.

// realBackend is one external system under test.
type realBackend struct {
	name string
	open func(t *testing.T) dispatcher.Backend
	// requested reads back the CPU cores and memory bytes the backend
	// recorded for a job.
	requested func(t *testing.T, b dispatcher.Backend, externalID string) (cpu float64, mem int64)
}

var realBackends = []realBackend{
	{
		name: "ray",
		open: func(t *testing.T) dispatcher.Backend {
			b, err := frayray.New(frayray.Options{Address: backends.Ray(t).Address, Namespace: "itest"})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		requested: func(t *testing.T, _ dispatcher.Backend, id string) (float64, int64) {
			// Ray's job info does not echo entrypoint resources; the job's
			// supervisor actor carries them as its required resources.
			res := raySupervisorResources(t, backends.Ray(t).Address, id)
			return res["CPU"], int64(res["memory"])
		},
	},
	{
		name: "iris",
		open: func(t *testing.T) dispatcher.Backend {
			b, err := frayiris.New(frayiris.Options{Controller: backends.Iris(t).Address, User: "itest"})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		requested: func(t *testing.T, b dispatcher.Backend, id string) (float64, int64) {
			st, err := b.(*frayiris.Backend).JobStatus(frayt.Context(t, 30*time.Second), id)
			if err != nil {
				t.Fatal(err)
			}
			r := st.GetRequest().GetResources()
			return float64(r.GetCpuMillicores()) / 1000, r.GetMemoryBytes()
		},
	},
}

// raySupervisorResources reads, through Ray's State API, the resources the
// supervisor actor of submission id required (they are the entrypoint's).
func raySupervisorResources(t *testing.T, address, id string) map[string]float64 {
	t.Helper()
	u := address + "/api/v0/actors?detail=true&filter_keys=name&filter_predicates=%3D&filter_values=" +
		url.QueryEscape("_ray_internal_job_actor_"+id)
	var out struct {
		Data struct {
			Result struct {
				Result []struct {
					RequiredResources map[string]float64 `json:"required_resources"`
				} `json:"result"`
			} `json:"result"`
		} `json:"data"`
	}
	frayt.Eventually(t, time.Minute, "supervisor actor of "+id+" is listed", func() bool {
		resp, err := http.Get(u)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&out) == nil && len(out.Data.Result.Result) == 1
	})
	return out.Data.Result.Result[0].RequiredResources
}

// uniqueID is a fray job id no earlier run used (Ray and Iris remember jobs).
func uniqueID(t *testing.T) string {
	return fmt.Sprintf("/itest/%s-%d-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), time.Now().UnixNano()%1e9, rand.IntN(1000))
}

func waitTerminal(t *testing.T, b dispatcher.Backend, id string) dispatcher.RemoteStatus {
	t.Helper()
	var st dispatcher.RemoteStatus
	frayt.Eventually(t, 3*time.Minute, "job "+id+" reaches a terminal state", func() bool {
		var err error
		st, err = b.Status(context.Background(), id)
		if err != nil {
			t.Logf("status %s: %v", id, err)
			return false
		}
		return st.State.Terminal()
	})
	return st
}

// allLogs polls Logs from cursor 0 until cond holds on what it read, checking
// that the cursor never moves back, that no "fray-" marker line comes twice,
// and that a poll past the end of a finished job's log returns nothing.
func allLogs(t *testing.T, b dispatcher.Backend, id string, cond func(string) bool) string {
	t.Helper()
	var got []string
	var cursor int64
	frayt.Eventually(t, time.Minute, "logs of "+id+" complete", func() bool {
		lines, next, err := b.Logs(context.Background(), id, cursor)
		if err != nil {
			t.Logf("logs %s: %v", id, err)
			return false
		}
		if next < cursor {
			t.Fatalf("log cursor moved back from %d to %d", cursor, next)
		}
		cursor = next
		got = append(got, lines...)
		return cond(strings.Join(got, "\n"))
	})
	seen := map[string]bool{}
	for _, l := range got {
		if strings.HasPrefix(l, "fray-") && seen[l] {
			t.Errorf("line %q returned twice", l)
		}
		seen[l] = true
	}
	lines, _, err := b.Logs(context.Background(), id, cursor)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) > 0 {
		t.Errorf("a poll past the end returned %q again", lines)
	}
	return strings.Join(got, "\n")
}

func submit(t *testing.T, b dispatcher.Backend, req *jobs.JobRequest) (jobID, externalID string) {
	t.Helper()
	if err := b.Validate(req); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	jobID = uniqueID(t)
	externalID, err := b.Submit(frayt.Context(t, time.Minute), jobID, "run-1", req)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	return jobID, externalID
}

func forEachBackend(t *testing.T, f func(t *testing.T, rb realBackend, b dispatcher.Backend)) {
	for _, rb := range realBackends {
		t.Run(rb.name, func(t *testing.T) {
			t.Parallel()
			f(t, rb, rb.open(t))
		})
	}
}

func TestRealBackendRunsJobToSuccessWithItsOutputInLogs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, _ realBackend, b dispatcher.Backend) {
		// printf proves the argv reaches the process argument by argument:
		// spaces, quotes and $ survive (Ray runs a shell command line).
		req := &jobs.JobRequest{Name: "hello", Entrypoint: jobs.Entrypoint{Argv: []string{
			"sh", "-c", `echo fray-hello-out; echo fray-hello-err >&2; printf '%s|' "$@"; echo`, "sh", "a b", "it's", "$HOME", "",
		}}}
		_, id := submit(t, b, req)
		if st := waitTerminal(t, b, id); st.State != jobs.StatusSucceeded {
			t.Fatalf("state %s (%s), want SUCCEEDED", st.State, st.Message)
		}
		logs := allLogs(t, b, id, func(s string) bool {
			return strings.Contains(s, "fray-hello-out") && strings.Contains(s, "fray-hello-err") && strings.Contains(s, "|")
		})
		if !strings.Contains(logs, "a b|it's|$HOME||") {
			t.Errorf("argv did not arrive intact; logs:\n%s", logs)
		}
	})
}

func TestRealBackendReportsFailingCommandAsFailedWithError(t *testing.T) {
	forEachBackend(t, func(t *testing.T, _ realBackend, b dispatcher.Backend) {
		_, id := submit(t, b, &jobs.JobRequest{Name: "boom", Entrypoint: jobs.Entrypoint{Argv: []string{"sh", "-c", "echo fray-boom >&2; exit 3"}}})
		st := waitTerminal(t, b, id)
		if st.State != jobs.StatusFailed {
			t.Fatalf("state %s, want FAILED", st.State)
		}
		if !strings.Contains(st.Message, "3") {
			t.Errorf("error %q does not give the exit code 3", st.Message)
		}
		t.Logf("error: %s", st.Message)
	})
}

func TestRealBackendStopsSleepingJobAndItsProcess(t *testing.T) {
	forEachBackend(t, func(t *testing.T, _ realBackend, b dispatcher.Backend) {
		// A unique duration marks this job's process: GNU sleep takes 600.NNN.
		dur := fmt.Sprintf("600.%06d", rand.IntN(1e6))
		_, id := submit(t, b, &jobs.JobRequest{Name: "sleeper", Entrypoint: jobs.Entrypoint{Argv: []string{"sleep", dur}}})
		frayt.Eventually(t, 2*time.Minute, "sleep "+dur+" is running", func() bool {
			return len(backends.ProcessesWithArg(dur)) > 0
		})
		if err := b.Stop(frayt.Context(t, time.Minute), id); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if st := waitTerminal(t, b, id); st.State != jobs.StatusStopped {
			t.Fatalf("state %s (%s), want STOPPED", st.State, st.Message)
		}
		frayt.Eventually(t, time.Minute, "no sleep "+dur+" process remains", func() bool {
			return len(backends.ProcessesWithArg(dur)) == 0
		})
		if err := b.Stop(frayt.Context(t, time.Minute), id); err != nil {
			t.Errorf("stopping a finished job: %v, want no error", err)
		}
	})
}

func TestRealBackendPassesEnvVarsToTheProcess(t *testing.T) {
	forEachBackend(t, func(t *testing.T, _ realBackend, b dispatcher.Backend) {
		req := &jobs.JobRequest{
			Name:        "env",
			Entrypoint:  jobs.Entrypoint{Argv: []string{"sh", "-c", `echo "fray-env=$FRAY_K1/$FRAY_K2"`}},
			Environment: jobs.EnvironmentConfig{EnvVars: map[string]string{"FRAY_K1": "v1", "FRAY_K2": "two words"}},
		}
		_, id := submit(t, b, req)
		if st := waitTerminal(t, b, id); st.State != jobs.StatusSucceeded {
			t.Fatalf("state %s (%s)", st.State, st.Message)
		}
		allLogs(t, b, id, func(s string) bool { return strings.Contains(s, "fray-env=v1/two words") })
	})
}

func TestRealBackendRecordsRequestedCPUAndMemory(t *testing.T) {
	forEachBackend(t, func(t *testing.T, rb realBackend, b dispatcher.Backend) {
		req := &jobs.JobRequest{
			Name:       "cpu",
			Entrypoint: jobs.Entrypoint{Argv: []string{"true"}},
			Resources:  jobs.ResourceConfig{CPU: 0.5, RAM: "64m"},
		}
		_, id := submit(t, b, req)
		cpu, mem := rb.requested(t, b, id)
		if cpu != 0.5 || mem != 64<<20 {
			t.Errorf("backend recorded cpu=%v mem=%d, want 0.5 and %d", cpu, mem, 64<<20)
		}
		if st := waitTerminal(t, b, id); st.State != jobs.StatusSucceeded {
			t.Fatalf("state %s (%s)", st.State, st.Message)
		}
	})
}

func TestRealBackendListsSubmittedJobsWithFrayIDs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, _ realBackend, b dispatcher.Backend) {
		jobID, id := submit(t, b, &jobs.JobRequest{Name: "listed", Entrypoint: jobs.Entrypoint{Argv: []string{"true"}}})
		again, err := b.Submit(frayt.Context(t, time.Minute), jobID, "run-1", &jobs.JobRequest{Name: "listed", Entrypoint: jobs.Entrypoint{Argv: []string{"true"}}})
		if err != nil || again != id {
			t.Fatalf("second Submit of %s = %q, %v; want %q (not a second job)", jobID, again, err, id)
		}
		list, err := b.List(frayt.Context(t, time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, j := range list {
			if j.ExternalID == id {
				n++
				if j.JobID != jobID {
					t.Errorf("listed job %s has fray id %q, want %q", id, j.JobID, jobID)
				}
			}
		}
		if n != 1 {
			t.Errorf("job %s listed %d times among %d jobs, want once", id, n, len(list))
		}
		waitTerminal(t, b, id)
	})
}

// clientBackend is one backend reached through the public client: a spec for
// fray.Connect and a way to read back the CPU the backend recorded.
type clientBackend struct {
	name      string
	spec      func(t *testing.T) string
	requested func(t *testing.T, rec *jobs.Record) float64
	// describe reports the backend's own view of a job (for failures).
	describe func(t *testing.T, rec *jobs.Record) string
}

var clientBackends = []clientBackend{
	{
		name: "native",
		spec: func(t *testing.T) string { return "local" },
		requested: func(t *testing.T, rec *jobs.Record) float64 {
			return rec.Request.Resources.CPU
		},
		describe: func(t *testing.T, rec *jobs.Record) string { return fmt.Sprintf("%+v", rec) },
	},
	{
		name: "ray",
		spec: func(t *testing.T) string { return "ray?address=" + backends.Ray(t).Address + "&namespace=scenarios" },
		requested: func(t *testing.T, rec *jobs.Record) float64 {
			return raySupervisorResources(t, backends.Ray(t).Address, rec.ExternalID)["CPU"]
		},
		describe: func(t *testing.T, rec *jobs.Record) string {
			b, _ := frayray.New(frayray.Options{Address: backends.Ray(t).Address})
			info, err := b.Info(context.Background(), rec.ExternalID)
			return fmt.Sprintf("%+v %v", info, err)
		},
	},
	{
		name: "iris",
		spec: func(t *testing.T) string { return "iris?controller=" + backends.Iris(t).Address },
		requested: func(t *testing.T, rec *jobs.Record) float64 {
			b, err := frayiris.New(frayiris.Options{Controller: backends.Iris(t).Address})
			if err != nil {
				t.Fatal(err)
			}
			st, err := b.JobStatus(frayt.Context(t, 30*time.Second), rec.ExternalID)
			if err != nil {
				t.Fatal(err)
			}
			return float64(st.GetRequest().GetResources().GetCpuMillicores()) / 1000
		},
		describe: func(t *testing.T, rec *jobs.Record) string {
			b, _ := frayiris.New(frayiris.Options{Controller: backends.Iris(t).Address})
			st, err := b.JobStatus(context.Background(), rec.ExternalID)
			return fmt.Sprintf("%v %v", st.GetJob(), err)
		},
	},
}

// jobLogs waits until the job's mirrored logs satisfy cond and returns them.
func jobLogs(t *testing.T, h *jobs.Handle, cond func(string) bool) string {
	t.Helper()
	var text string
	frayt.Eventually(t, time.Minute, "logs of "+h.ID(), func() bool {
		lines, err := h.Logs(context.Background(), 0)
		if err != nil {
			return false
		}
		var sb strings.Builder
		for _, l := range lines {
			sb.WriteString(l.Text + "\n")
		}
		text = sb.String()
		return cond(text)
	})
	return text
}

// TestScenariosRunAlikeOnEveryBackend runs one scenario table through the
// public client (fray.Connect, Submit, Wait, Logs, Terminate, ListJobs)
// against fray's own workers, a real Ray head and a real Iris cluster.
func TestScenariosRunAlikeOnEveryBackend(t *testing.T) {
	run := fmt.Sprintf("%d", time.Now().UnixNano()%1e9) // Ray and Iris remember old jobs
	for _, cb := range clientBackends {
		t.Run(cb.name, func(t *testing.T) {
			t.Parallel()
			ctx := frayt.Context(t, 10*time.Minute)
			c, err := fray.Connect(ctx, cb.spec(t), fray.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer c.Close()
			submit := func(t *testing.T, name string, req jobs.JobRequest) *jobs.Handle {
				t.Helper()
				req.Name = name + "-" + run
				h, err := c.Submit(ctx, req)
				if err != nil {
					t.Fatalf("Submit: %v", err)
				}
				return h
			}
			wait := func(t *testing.T, h *jobs.Handle) *jobs.Record {
				t.Helper()
				wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
				defer cancel()
				rec, err := h.Wait(wctx, jobs.WaitOptions{})
				if err != nil {
					t.Fatalf("Wait %s: %v", h.ID(), err)
				}
				return rec
			}

			t.Run("succeeds with its output in the logs", func(t *testing.T) {
				h := submit(t, "hello", jobs.JobRequest{Entrypoint: jobs.Command("sh", "-c", "echo scenario-hello")})
				if rec := wait(t, h); rec.Status != jobs.StatusSucceeded {
					t.Fatalf("status %s (%s)", rec.Status, rec.Error)
				}
				jobLogs(t, h, func(s string) bool { return strings.Contains(s, "scenario-hello\n") })
			})
			t.Run("failing command ends FAILED with the error", func(t *testing.T) {
				h := submit(t, "boom", jobs.JobRequest{Entrypoint: jobs.Command("sh", "-c", "echo scenario-boom >&2; exit 3")})
				rec := wait(t, h)
				if rec.Status != jobs.StatusFailed || !strings.Contains(rec.Error, "3") {
					t.Fatalf("status %s, error %q; want FAILED naming exit code 3", rec.Status, rec.Error)
				}
			})
			t.Run("stop of a sleep ends STOPPED and kills the process", func(t *testing.T) {
				dur := fmt.Sprintf("600.%06d", rand.IntN(1e6))
				h := submit(t, "sleeper", jobs.JobRequest{Entrypoint: jobs.Command("sleep", dur)})
				frayt.Eventually(t, 2*time.Minute, "sleep "+dur+" is running", func() bool {
					return len(backends.ProcessesWithArg(dur)) > 0
				})
				if err := h.Terminate(ctx); err != nil {
					t.Fatalf("Terminate: %v", err)
				}
				rec := wait(t, h)
				if rec.Status != jobs.StatusStopped {
					t.Fatalf("status %s (%s), want STOPPED", rec.Status, rec.Error)
				}
				deadline := time.Now().Add(time.Minute)
				for len(backends.ProcessesWithArg(dur)) > 0 {
					if time.Now().After(deadline) {
						if r, err := h.Info(ctx); err == nil {
							rec = r
						}
						t.Fatalf("sleep %s still runs a minute after the job was STOPPED: %v\nfray: %+v\nbackend: %s",
							dur, backends.ProcessesWithArg(dur), rec, cb.describe(t, rec))
					}
					time.Sleep(100 * time.Millisecond)
				}
			})
			t.Run("env vars reach the process", func(t *testing.T) {
				h := submit(t, "env", jobs.JobRequest{
					Entrypoint:  jobs.Command("sh", "-c", `echo "scenario-env=$SCENARIO_K"`),
					Environment: jobs.EnvironmentConfig{EnvVars: map[string]string{"SCENARIO_K": "v 1"}},
				})
				if rec := wait(t, h); rec.Status != jobs.StatusSucceeded {
					t.Fatalf("status %s (%s)", rec.Status, rec.Error)
				}
				jobLogs(t, h, func(s string) bool { return strings.Contains(s, "scenario-env=v 1\n") })
			})
			t.Run("CPU request reaches the backend", func(t *testing.T) {
				h := submit(t, "cpu", jobs.JobRequest{Entrypoint: jobs.Command("true"), Resources: jobs.ResourceConfig{CPU: 0.5}})
				rec := wait(t, h)
				if rec.Status != jobs.StatusSucceeded {
					t.Fatalf("status %s (%s)", rec.Status, rec.Error)
				}
				if got := cb.requested(t, rec); got != 0.5 {
					t.Errorf("backend recorded %v CPUs, want 0.5", got)
				}
			})
			t.Run("list shows the jobs", func(t *testing.T) {
				h := submit(t, "listed", jobs.JobRequest{Entrypoint: jobs.Command("true")})
				wait(t, h)
				recs, err := c.ListJobs(ctx, jobs.Filter{})
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, r := range recs {
					found = found || r.ID == h.ID()
				}
				if !found {
					t.Errorf("%s not among %d listed jobs", h.ID(), len(recs))
				}
			})
		})
	}
}

// TestCLISubmitWaitRunsOnRayOrIrisAndPrintsTheLogs runs
// `FRAY_CLUSTER_SPEC=ray?address=… fray submit --wait --cpu 2 --env K=V -- CMD`
// (and the same with an iris?controller=… spec) from a laptop's point of
// view: no broker, just the Ray head or Iris controller.
func TestCLISubmitWaitRunsOnRayOrIrisAndPrintsTheLogs(t *testing.T) {
	for _, cb := range clientBackends[1:] {
		t.Run(cb.name, func(t *testing.T) {
			t.Parallel()
			name := fmt.Sprintf("cli-%d", time.Now().UnixNano()%1e9)
			out, errOut, code := runFray(t, []string{"FRAY_CLUSTER_SPEC=" + cb.spec(t)}, 3*time.Minute,
				"submit", "--wait", "--name", name, "--cpu", "2", "--env", "CLI_K=cli value", "--", "sh", "-c", `echo "cli-says $CLI_K"`)
			if code != 0 || !strings.Contains(out, "cli-says cli value\n") {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			// The job ran on the backend with the requested CPUs.
			rec := &jobs.Record{ExternalID: cliExternalID(t, cb.name, name)}
			if cpu := cb.requested(t, rec); cpu != 2 {
				t.Errorf("%s recorded %v CPUs for the job, want 2", cb.name, cpu)
			}
		})
	}
}

// cliExternalID finds the backend's id of the fray job named name.
func cliExternalID(t *testing.T, kind, name string) string {
	t.Helper()
	var b dispatcher.Backend
	var err error
	if kind == "ray" {
		b, err = frayray.New(frayray.Options{Address: backends.Ray(t).Address})
	} else {
		b, err = frayiris.New(frayiris.Options{Controller: backends.Iris(t).Address})
	}
	if err != nil {
		t.Fatal(err)
	}
	list, err := b.List(frayt.Context(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range list {
		if strings.HasSuffix(j.JobID, "/"+name) {
			return j.ExternalID
		}
	}
	t.Fatalf("job %s not found on %s among %d jobs", name, kind, len(list))
	return ""
}
