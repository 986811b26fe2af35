package fray_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/internal/wirevec"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/tasks"
	"github.com/fxamacker/cbor/v2"
	"github.com/nats-io/nats.go/jetstream"
)

// The wire conformance vectors of testdata/wire (the actor ones are in
// package actors): each decodes into its Go type and re-encodes to the same
// bytes. python/tests/test_wire.py does the same from Python.

var vecRef = objects.Ref{V: 1, Bucket: "FRAY_OBJECTS", Digest: "sha256:" + "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Size: 300000}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := objects.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWireVectorsTasks(t *testing.T) {
	// Version 2, as producers write it: the message's Nats-Msg-Id
	// ("OWNERj3kdkAQSgJ8c4XBs.W1dtIxqFtC1nDEwpDgq3SQ") names the task.
	wirevec.Check(t, "task", "Task", &taskwire.Task{V: 2, Fn: "fray.echo",
		Arg: mustMarshal(t, map[string]any{"n": 1, "s": "x"}), TimeoutMS: 5000, Retries: 2, BackoffMS: 100, MaxDeliveries: 3, SubmittedMS: 1765000000000})
	ref := vecRef
	wirevec.Check(t, "task_arg_ref", "Task", &taskwire.Task{V: 2, Fn: "py.call", ArgRef: &ref, SubmittedMS: 1765000000001})
	// Version 1, which workers still read: the id and owner in the body.
	wirevec.Check(t, "task_v1", "Task", &taskwire.Task{V: 1, ID: "W1dtIxqFtC1nDEwpDgq3SQ", Owner: "OWNERj3kdkAQSgJ8c4XBs", Fn: "fray.echo",
		Arg: mustMarshal(t, map[string]any{"n": 1, "s": "x"}), TimeoutMS: 5000, Retries: 2, BackoffMS: 100, MaxDeliveries: 5, SubmittedMS: 1765000000000})
	wirevec.Check(t, "result", "Result", &tasks.Result{V: 1, ID: "W1dtIxqFtC1nDEwpDgq3SQ", Value: mustMarshal(t, []any{1, 2.5, "three"}),
		Worker: "host-1", Attempt: 1, StartedMS: 1765000000100, FinishedMS: 1765000000200})
	wirevec.Check(t, "result_value_ref", "Result", &tasks.Result{V: 1, ID: "W1dtIxqFtC1nDEwpDgq3SQ", ValueRef: &ref,
		Worker: "host-1", Attempt: 2, StartedMS: 1765000000100, FinishedMS: 1765000000200})
	info := &tasks.ErrorInfo{Kind: "handler", Fn: "py.call", Message: "bad value", Type: "builtins.ValueError", Worker: "host-1", Attempt: 1,
		Lang: "python", Traceback: "Traceback (most recent call last):\n  File \"job.py\", line 3, in f\nValueError: bad value\n", Exc: []byte{0x80, 0x05, 0x95}}
	wirevec.Check(t, "error_info", "ErrorInfo", info)
	wirevec.Check(t, "result_error", "Result", &tasks.Result{V: 1, ID: "W1dtIxqFtC1nDEwpDgq3SQ", Error: info,
		Worker: "host-1", Attempt: 1, StartedMS: 1765000000100, FinishedMS: 1765000000200})
}

func TestWireVectorsObjects(t *testing.T) {
	ref := vecRef
	wirevec.Check(t, "ref", "Ref", &ref)

	// The object metadata frayhq writes is the NATS object store's JSON
	// ObjectInfo; nats.go must read it, zero mtime included.
	data, err := os.ReadFile(filepath.Join(wirevec.Dir(t), "object_meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vec struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(data, &vec); err != nil {
		t.Fatal(err)
	}
	var info jetstream.ObjectInfo
	if err := json.Unmarshal([]byte(vec.Text), &info); err != nil {
		t.Fatalf("nats.go cannot read frayhq's object metadata: %v\n%s", err, vec.Text)
	}
	if info.Name != ref.Digest || info.Bucket != "FRAY_OBJECTS" || info.Size != 300000 || info.Chunks != 2 ||
		info.Digest != "SHA-256=n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg=" || info.Opts == nil || info.Opts.ChunkSize != 262144 ||
		!info.ModTime.Equal(time.Time{}) {
		t.Fatalf("object metadata read as %+v", info)
	}
}

func TestWireVectorsJobs(t *testing.T) {
	f, three := false, 3
	req := jobs.JobRequest{V: 1, Name: "train",
		Entrypoint: jobs.Entrypoint{Argv: []string{"python3", "-m", "frayhq.job", "--call", "FRAY_OBJECTS/sha256:00/1", "--result", "o.t"}},
		Resources: jobs.ResourceConfig{CPU: 8, RAM: "16g", Disk: "64g", Device: jobs.DeviceConfig{Kind: "tpu", Variant: "v5litepod-16", Count: 4},
			Preemptible: &f, Regions: []string{"us-east5"}},
		Environment: jobs.EnvironmentConfig{EnvVars: map[string]string{"A": "1"}, PipPackages: []string{"numpy"}},
		Replicas:    4, MaxRetriesFailure: 1, MaxRetriesPreemption: &three, Timeout: time.Hour, Priority: 2,
		Coscheduling: &jobs.Coscheduling{GroupBy: "tpu-name"}}
	wirevec.Check(t, "job_request", "JobRequest", &req)
	wirevec.Check(t, "job_submit_request", "SubmitRequest", &jobs.SubmitRequest{V: 1, ID: "/default/train", Request: req})
	wirevec.Check(t, "job_record", "Record", &jobs.Record{V: 1, ID: "/default/train", Name: "train", Namespace: "default",
		Run: "RUNj3kdkAQSgJ8c4XBs1", Request: req, Status: jobs.StatusRunning, Backend: "native",
		Tasks: []jobs.TaskState{{Index: 0, State: "RUNNING", Worker: "host-1",
			Attempts: []jobs.TaskAttempt{{Attempt: 0, Worker: "host-1", State: "RUNNING", ExitCode: -1, StartMS: 1765000000300}}}},
		SubmittedMS: 1765000000000, StartedMS: 1765000000300, UpdatedMS: 1765000000300})
}

// A pickled Python value is opaque to Go: decoding it fails with a sentinel
// naming the tag, never garbage.
func TestWireVectorPickleTag(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(wirevec.Dir(t), "pickle_tag.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := objects.Unmarshal(data, &v); !errors.Is(err, objects.ErrPythonValue) {
		t.Fatalf("decoding a pickled value: %v, want objects.ErrPythonValue", err)
	}
	var raw map[string]cbor.RawMessage
	if err := objects.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	again := mustMarshal(t, raw)
	if string(again) != string(data) {
		t.Fatalf("carried through Go as raw CBOR, the value changed:\n%x\n%x", again, data)
	}
}
