package fray_test

import (
	"context"
	"fmt"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/jobs"
)

// Submit a command as a job, wait for it, and read its output.
func ExampleClient_Submit() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := fray.Connect(ctx, "local") // an in-process broker, dispatcher and worker
	if err != nil {
		panic(err)
	}
	defer c.Close()
	h, err := c.Submit(ctx, jobs.JobRequest{
		Name:       "greet",
		Entrypoint: jobs.Command("sh", "-c", `echo "hello from $FRAY_JOB_ID"`),
		Resources:  jobs.ResourceConfig{CPU: 1, RAM: "64m"},
	})
	if err != nil {
		panic(err)
	}
	rec, err := h.Wait(ctx, jobs.WaitOptions{RaiseOnFailure: true})
	if err != nil {
		panic(err)
	}
	fmt.Println(rec.ID, rec.Status)
	for line, err := range h.Follow(ctx) {
		if err != nil {
			panic(err)
		}
		fmt.Println(line.Text)
	}
	// Output:
	// /default/greet SUCCEEDED
	// hello from /default/greet
}
