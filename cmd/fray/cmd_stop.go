package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"time"
)

func init() {
	register(command{name: "stop", summary: "stop a job and its children: fray stop ID", run: runStop})
}

func bufferedStdout() *bufio.Writer { return bufio.NewWriterSize(os.Stdout, 64<<10) }

func runStop(ctx context.Context, args []string) error {
	fs := newFlags("stop", "ID [flags]")
	natsURL := clusterFlag(fs)
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the job to be STOPPED")
	c, h, err := openJob(ctx, fs, args, natsURL, "fray stop: give a job id, e.g. fray stop /default/train")
	if err != nil {
		return err
	}
	defer c.Close()
	sctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := h.Terminate(sctx); err != nil {
		return fmt.Errorf("stop %s: %w", h.ID(), err)
	}
	r, err := h.Info(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("%s %s\n", r.ID, r.Status)
	return nil
}
