package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

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
	if err := checkJobArgs(fs, pos); err != nil {
		return err
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
	if *follow {
		lw := newLiveWriter(os.Stdout, followFlushDelay)
		defer lw.Flush()
		for line, err := range h.Follow(ctx) {
			if err != nil {
				return err
			}
			if *prefix {
				fmt.Fprintf(lw, "[%d] %s\n", line.Task, line.Text)
			} else {
				fmt.Fprintln(lw, line.Text)
			}
		}
		lw.Flush()
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
	w := bufferedStdout()
	defer w.Flush()
	for _, line := range lines {
		if *prefix {
			fmt.Fprintf(w, "[%d] ", line.Task)
		}
		fmt.Fprintln(w, line.Text)
	}
	return nil
}

// followFlushDelay is how long a followed line may wait in the buffer.
var followFlushDelay = 50 * time.Millisecond

// liveWriter buffers output for throughput but flushes it at most delay
// after the first unflushed write, so a follower sees each line as it
// arrives instead of when 64 KiB have piled up or the job has ended.
type liveWriter struct {
	mu    sync.Mutex
	w     *bufio.Writer
	delay time.Duration
	timer *time.Timer
}

func newLiveWriter(out io.Writer, delay time.Duration) *liveWriter {
	return &liveWriter{w: bufio.NewWriterSize(out, 64<<10), delay: delay}
}

func (l *liveWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.w.Write(p)
	if l.timer == nil && l.w.Buffered() > 0 {
		l.timer = time.AfterFunc(l.delay, func() { l.Flush() })
	}
	return n, err
}

// Flush writes out what is buffered.
func (l *liveWriter) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	return l.w.Flush()
}
