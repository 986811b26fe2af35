package main

import (
	"context"
	"fmt"
)

func init() {
	register(command{name: "logs", summary: "print a job's logs: fray logs [-f] ID", run: runLogs})
}

func runLogs(ctx context.Context, args []string) error {
	fs := newFlags("logs", "[-f] ID")
	natsURL := clusterFlag(fs)
	follow := fs.Bool("f", false, "follow: keep printing new lines until the job ends")
	tail := fs.Int("tail", 0, "print only the last N lines (0: all; without -f)")
	prefix := fs.Bool("task-prefix", false, "prefix every line with its task index, [i]")
	c, h, err := openJob(ctx, fs, args, natsURL, "fray logs: give a job id, e.g. fray logs -f /default/train")
	if err != nil {
		return err
	}
	defer c.Close()
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
