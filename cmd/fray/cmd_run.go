package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/frayhq/fray/tasks"
)

func init() {
	register(command{name: "run", summary: "submit one task: fray run NAME --arg JSON [--wait]", run: runRun})
	register(command{name: "result", summary: "print a task's result by future id: fray result ID", run: runResult})
}

func runRun(ctx context.Context, args []string) error {
	fs := newFlags("run", "NAME [flags]")
	natsURL := clusterFlag(fs)
	arg := fs.String("arg", "", "the task's argument as JSON (default null)")
	pool := fs.String("pool", tasks.DefaultPool, "pool of workers to run on")
	wait := fs.Bool("wait", false, "wait for the result and print it as JSON; exit 1 with the error if the task fails")
	timeout := fs.Duration("timeout", 0, "per-attempt timeout (0: none)")
	retries := fs.Int("retries", 0, "retries for errors the handler marks retryable")
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		if err := parse(fs, args); err != nil {
			return err
		}
		fs.Usage()
		return errUsage
	}
	name := args[0]
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	v, err := parseJSONArg(*arg)
	if err != nil {
		return err
	}
	c, err := connect(ctx, *natsURL)
	if err != nil {
		return err
	}
	defer c.Close()
	opts := []tasks.Option{tasks.Pool(*pool), tasks.Retries(*retries, time.Second)}
	if *timeout > 0 {
		opts = append(opts, tasks.Timeout(*timeout))
	}
	fut := c.Run(ctx, name, v, opts...)
	if !*wait {
		// Surface a submission error (unknown function, full queue) now.
		if err := fut.Queued(ctx); err != nil {
			return err
		}
		fmt.Println(fut.ID())
		return nil
	}
	return printResult(ctx, fut)
}

func printResult(ctx context.Context, fut *tasks.Future) error {
	var out any
	if err := fut.Get(ctx, &out); err != nil {
		return err
	}
	return printJSON(out)
}

func runResult(ctx context.Context, args []string) error {
	fs := newFlags("result", "ID [flags]")
	natsURL := clusterFlag(fs)
	wait := fs.Duration("wait", 0, "wait this long for a result not yet recorded (0: don't wait)")
	if len(args) == 0 || args[0][0] == '-' {
		if err := parse(fs, args); err != nil {
			return err
		}
		fs.Usage()
		return errUsage
	}
	id := args[0]
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	c, err := connect(ctx, *natsURL)
	if err != nil {
		return err
	}
	defer c.Close()
	fut, err := c.Future(id)
	if err != nil {
		return err
	}
	if *wait == 0 {
		if _, err := c.Producer().Lookup(ctx, id); errors.Is(err, tasks.ErrNoResult) {
			fmt.Fprintf(os.Stderr, "fray result: no result for %s yet (queued, running, or expired); --wait D waits\n", id)
			return exitError{code: 3}
		}
	}
	wctx := ctx
	if *wait > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, *wait)
		defer cancel()
	}
	return printResult(wctx, fut)
}
