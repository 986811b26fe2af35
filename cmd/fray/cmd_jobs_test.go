package main

import (
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/jobs"
)

func TestJobStatusShowsTheCommandWithoutHTMLEscapes(t *testing.T) {
	ep := jobs.Command("sh", "-c", `echo "a" > out 2>&1 && cat <in`)
	want := `["sh","-c","echo \"a\" > out 2>&1 && cat <in"]`
	if got := entrypointText(&ep); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	fn := jobs.Func("train", nil)
	if got := entrypointText(&fn); got != "func train" {
		t.Fatalf("func entrypoint: %q", got)
	}
}

func TestJobStatusShowsTheDevicesOfEachTask(t *testing.T) {
	r := &jobs.Record{Request: jobs.JobRequest{Resources: jobs.ResourceConfig{Device: jobs.DeviceConfig{Kind: jobs.DeviceGPU, Variant: "H100", Count: 2}}}}
	running := jobs.TaskState{Index: 0, State: jobs.TaskRunning, Worker: "w1", Attempts: []jobs.TaskAttempt{{Worker: "w1", State: jobs.TaskRunning, Devices: []string{"2", "3"}}}}
	if got, want := taskLine(r, &running), "task 0:      RUNNING on w1 [gpu 2,3]"; got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	done := jobs.TaskState{Index: 1, State: jobs.TaskSucceeded, Worker: "w1", Attempts: []jobs.TaskAttempt{{Worker: "w1", State: jobs.TaskSucceeded, Devices: []string{"0"}}}}
	if got, want := taskLine(r, &done), "task 1:      SUCCEEDED on w1 [gpu 0] (exit 0)"; got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestJobStatusSaysSinceWhenAndWhyTheBackendIsUnreachable(t *testing.T) {
	now := time.Date(2026, 3, 4, 12, 5, 14, 0, time.Local)
	r := &jobs.Record{Status: jobs.StatusRunning, UnreachableSinceMS: now.Add(-130 * time.Second).UnixMilli(),
		UnreachableError: "dial tcp 10.0.0.7:8265: connect: connection refused"}
	want := "backend unreachable since 12:03:04 (2m10s): dial tcp 10.0.0.7:8265: connect: connection refused"
	if got := contactLost(r, now); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	r.UnreachableSinceMS = now.Add(-25 * time.Hour).UnixMilli()
	if got, want := contactLost(r, now), "backend unreachable since 2026-03-03 11:05:14 (25h0m0s): dial tcp 10.0.0.7:8265: connect: connection refused"; got != want {
		t.Fatalf("a day later: got %q\nwant %q", got, want)
	}
	for _, r := range []*jobs.Record{{Status: jobs.StatusRunning}, {Status: jobs.StatusFailed, UnreachableSinceMS: 1}} {
		if got := contactLost(r, now); got != "" {
			t.Errorf("%s record with unreachable_since_ms %d: %q, want nothing", r.Status, r.UnreachableSinceMS, got)
		}
	}
}

func TestAJobArgumentThatCannotNameAJobExitsTwoSayingWhichCharacter(t *testing.T) {
	url := frayt.Server(t).ClientURL()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"jobs", "status", "/default/a*b"}, `fray jobs status: job id "/default/a*b": job name "a*b": character '*' not allowed`},
		{[]string{"logs", "a>"}, `fray logs: job "a>": job name "a>": character '>' not allowed`},
		{[]string{"logs", "-f", "/default"}, `fray logs: job id "/default": want /<namespace>/<name>`},
		{[]string{"stop", "/default/ok", "x y"}, `fray stop: job "x y": job name "x y" contains a space`},
	}
	for _, c := range cases {
		_, stderr, code := cli(t, append(c.args, "--nats", url)...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "nats:") {
			t.Errorf("fray %q: exit %d, stderr %q; want exit 2 saying %q", c.args, code, stderr, c.want)
		}
	}
}
