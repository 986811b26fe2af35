package main

import (
	"context"
	"fmt"
	"os"

	"github.com/frayhq/fray/jobs"
)

func init() {
	register(command{name: "logs", summary: "print a job's logs: fray logs [-f] ID (with -f, exit 1 unless the job SUCCEEDED)", run: runLogs})
}

func runLogs(ctx context.Context, args []string) error {
	fs := newFlags("logs", "[-f] ID")
	natsURL := clusterFlag(fs)
	follow := fs.Bool("f", false, "follow: keep printing new lines until the job ends; exit 1 unless it SUCCEEDED")
	tail := fs.Int("tail", 0, "print only the last N lines (0: all; without -f)")
	prefix := fs.Bool("task-prefix", false, "prefix every line with its task index, [i]")
	pos, err := parsePositional(fs, args, 1, 1, "job ID, e.g. fray logs -f /default/train")
	if err != nil {
		return err
	}
	if *tail < 0 {
		return usagef(fs, "--tail %d: want a number of lines, or 0 for all", *tail)
	}
	c, hs, err := openJobs(ctx, *natsURL, pos)
	if err != nil {
		return err
	}
	defer c.Close()
	h := hs[0]
	if _, err := h.Info(ctx); err != nil {
		return err
	}
	w := bufferedStdout()
	defer w.Flush()
	if *follow {
		for line, err := range h.Follow(ctx) {
			if err != nil {
				return err
			}
			if *prefix {
				fmt.Fprintf(w, "[%d] ", line.Task)
			}
			fmt.Fprintln(w, line.Text)
			if w.Buffered() > 0 && w.Available() < 4096 {
				w.Flush()
			}
		}
		w.Flush()
		r, err := h.Info(ctx)
		if err != nil {
			return err
		}
		if r.Status != jobs.StatusSucceeded {
			fmt.Fprintf(os.Stderr, "fray logs: job %s ended %s: %s\n", r.ID, r.Status, r.Error)
			return exitError{1}
		}
		return nil
	}
	lines, err := h.Logs(ctx, *tail)
	if err != nil {
		return err
	}
	for _, line := range lines {
		if *prefix {
			fmt.Fprintf(w, "[%d] ", line.Task)
		}
		fmt.Fprintln(w, line.Text)
	}
	return nil
}
