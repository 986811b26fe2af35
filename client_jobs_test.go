package fray_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/jobs"
)

func TestClientSubmitsAJobToTheLocalClusterAndReadsItsLogs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := fray.Connect(ctx, "local")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := c.Submit(ctx, jobs.JobRequest{Name: "hello", Entrypoint: jobs.Command("sh", "-c", "echo hello from $FRAY_JOB_ID")})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := h.Wait(ctx, jobs.WaitOptions{RaiseOnFailure: true})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != jobs.StatusSucceeded {
		t.Fatalf("status %s", rec.Status)
	}
	lines, err := h.Logs(ctx, 10)
	if err != nil || len(lines) != 1 || lines[0].Text != "hello from /default/hello" {
		t.Fatalf("logs %v %v", lines, err)
	}
	list, err := c.ListJobs(ctx, jobs.Filter{})
	if err != nil || len(list) != 1 || list[0].ID != "/default/hello" {
		t.Fatalf("list %v %v", list, err)
	}
}

func TestJobRefusesAnIDThatCannotNameAJob(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	c, err := fray.Connect(ctx, frayt.Server(t).ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, bad := range []string{"bad*id", "/default/a>b", "/default", "a b"} {
		if h, err := c.Job(ctx, bad); !errors.Is(err, jobs.ErrInvalid) {
			t.Errorf("Job(%q): handle %v, err %v; want jobs.ErrInvalid", bad, h, err)
		}
	}
	for _, good := range []string{"train", "/default/llama-3.1", "parent/child", "/ns/parent/child"} {
		if _, err := c.Job(ctx, good); err != nil {
			t.Errorf("Job(%q): %v", good, err)
		}
	}
}
