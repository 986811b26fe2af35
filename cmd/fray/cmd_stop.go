package main

import (
	"bufio"
	"context"
	"fmt"
	"os"

	"time"

	"github.com/frayhq/fray/jobs"
)

func init() {
	register(command{name: "stop", summary: "stop jobs and their children: fray stop ID [ID...]", run: runStop})
}

func bufferedStdout() *bufio.Writer { return bufio.NewWriterSize(os.Stdout, 64<<10) }

func runStop(ctx context.Context, args []string) error {
	fs := newFlags("stop", "ID [ID...] [flags]")
	natsURL := clusterFlag(fs)
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for each job to be STOPPED (on Ray or Iris: until the backend reports it killed)")
	ids, err := parsePositional(fs, args, 1, -1, "job ID, e.g. fray stop /default/train")
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		return usagef(fs, "--timeout %s: want a positive duration, e.g. 30s", *timeout)
	}
	if err := checkJobArgs(fs, ids); err != nil {
		return err
	}
	c, hs, err := openJobs(ctx, *natsURL, ids)
	if err != nil {
		return err
	}
	defer c.Close()
	failed := 0
	for _, h := range hs {
		sctx, cancel := context.WithTimeout(ctx, *timeout)
		err := h.Terminate(sctx)
		timedOut := err != nil && sctx.Err() != nil && ctx.Err() == nil
		cancel()
		if timedOut {
			fmt.Fprintf(os.Stderr, "fray stop: %s not STOPPED within %s%s; check it with fray jobs status %s, or give a longer --timeout\n",
				h.ID(), *timeout, stopPending(ctx, h), h.ID())
			failed++
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(os.Stderr, "fray stop: stop %s: %v\n", h.ID(), err)
			failed++
			continue
		}
		r, err := h.Info(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("%s %s\n", r.ID, r.Status)
	}
	if failed > 0 {
		return exitError{1}
	}
	return nil
}

// stopPending says, for a job whose stop ran out of time, what it waits
// for: its external backend to report it killed.
func stopPending(ctx context.Context, h *jobs.Handle) string {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := h.Info(ictx)
	if err != nil || r.StopRequestedMS == 0 || r.Status.Terminal() {
		return ""
	}
	return fmt.Sprintf(": %s was asked to stop it %s ago and still reports it %s", r.Backend,
		time.Since(time.UnixMilli(r.StopRequestedMS)).Round(time.Second), r.Status)
}
