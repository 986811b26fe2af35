package main

import (
	"testing"

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
