package jobs_test

import (
	"testing"
	"time"

	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
)

// Version 2 writes the timeouts in milliseconds, the unit of every other
// fray duration, and nothing in nanoseconds.
func TestJobRequestTimeoutsTravelAsMilliseconds(t *testing.T) {
	req := jobs.JobRequest{Name: "x", Entrypoint: jobs.Command("true"), Timeout: 90 * time.Second, SchedulingTimeout: 1500*time.Microsecond + 10*time.Minute}
	b, err := objects.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := objects.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["v"] != uint64(jobwire.RequestVersion) || m["timeout_ms"] != uint64(90_000) || m["scheduling_timeout_ms"] != uint64(600_002) {
		t.Fatalf("encoded %v", m)
	}
	if _, ok := m["timeout"]; ok {
		t.Fatalf("version 2 also wrote the nanosecond key: %v", m)
	}
	var back jobs.JobRequest
	if err := objects.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Timeout != 90*time.Second || back.SchedulingTimeout != 10*time.Minute+2*time.Millisecond || back.Name != "x" || len(back.Entrypoint.Argv) != 1 {
		t.Fatalf("decoded %+v", back)
	}
	// Inside a job record too.
	rb, err := objects.Marshal(&jobs.Record{ID: "/ns/x", Request: req})
	if err != nil {
		t.Fatal(err)
	}
	r, err := jobs.DecodeRecord(rb)
	if err != nil || r.Request.Timeout != 90*time.Second {
		t.Fatalf("record round trip: %+v %v", r, err)
	}
}

// A version 1 request (nanosecond timeouts, as older clients write) reads
// the same.
func TestJobRequestOfVersion1IsReadWithNanosecondTimeouts(t *testing.T) {
	v1 := map[string]any{"v": 1, "name": "old", "entrypoint": map[string]any{"argv": []string{"true"}},
		"resources": map[string]any{"device": map[string]any{}}, "environment": map[string]any{},
		"timeout": int64(90 * time.Second), "scheduling_timeout": int64(time.Minute)}
	b, err := objects.Marshal(v1)
	if err != nil {
		t.Fatal(err)
	}
	var r jobs.JobRequest
	if err := objects.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Timeout != 90*time.Second || r.SchedulingTimeout != time.Minute || r.Name != "old" {
		t.Fatalf("decoded %+v", r)
	}
}
