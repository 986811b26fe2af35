package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/tasks"
	"github.com/fxamacker/cbor/v2"
)

func init() {
	register(command{name: "run", summary: "submit one task: fray run NAME --arg JSON [--wait]", run: runRun})
	register(command{name: "result", summary: "print a task's result by future id: fray result ID [--wait D]", run: runResult})
}

// progressEvery is how often `fray run --wait` says it is still waiting.
var progressEvery = 10 * time.Second

// taskClusterFlag adds --nats for the task commands, defaulting to
// $FRAY_CLUSTER_SPEC.
func taskClusterFlag(fs *flag.FlagSet) *string {
	return fs.String("nats", os.Getenv(fray.EnvClusterSpec), "cluster to use: nats://host:4222 (what `fray up` prints); defaults to $FRAY_CLUSTER_SPEC")
}

// connectTasks is connect for the task commands (run, result, workers):
// tasks and workers live in a fray cluster, so a ray?/iris? spec without
// nats=URL, which names none, is refused rather than answered by a
// throwaway in-process one.
func connectTasks(ctx context.Context, fs *flag.FlagSet, spec string) (*fray.Client, error) {
	if sp, err := fray.ParseSpec(spec); err == nil && (sp.Kind == fray.SpecRay || sp.Kind == fray.SpecIris) && len(sp.URLs) == 0 {
		return nil, usagef(fs, "cluster spec %q names no fray cluster: tasks and workers need one (--nats nats://host:4222, or add &nats=nats://host:4222 to the spec)", spec)
	}
	return connect(ctx, spec)
}

func runRun(ctx context.Context, args []string) error {
	fs := newFlags("run", "NAME [flags]")
	natsURL := taskClusterFlag(fs)
	arg := fs.String("arg", "", "the task's argument as JSON (default null)")
	pool := fs.String("pool", tasks.DefaultPool, "pool of workers to run on")
	wait := fs.Bool("wait", false, "wait for the result and print it as JSON; exit 1 with the error if the task fails")
	timeout := fs.Duration("timeout", 0, "per-attempt timeout (0: none)")
	retries := fs.Int("retries", 0, "retries for errors the handler marks retryable and for timeouts, after 1s, then doubling")
	pos, err := parsePositional(fs, args, 1, 1, "function NAME, e.g. fray run fray.echo --arg '[1]'")
	if err != nil {
		return err
	}
	name := pos[0]
	if err := taskwire.CheckFunction(name); err != nil {
		return usagef(fs, "bad function name %q; want 1 to 256 bytes without spaces or control characters, e.g. fray.echo", name)
	}
	if err := taskwire.CheckPool(*pool); err != nil {
		return usagef(fs, "--pool %q: want a non-empty name without spaces, '.', '*' or '>'", *pool)
	}
	if *timeout < 0 {
		return usagef(fs, "--timeout %s: want a positive duration, or 0 for none", *timeout)
	}
	if *retries < 0 {
		return usagef(fs, "--retries %d: want 0 or more", *retries)
	}
	v, err := parseJSONArg(*arg)
	if err != nil {
		return usagef(fs, "%v", err) // a command-line mistake: exit 2
	}
	c, err := connectTasks(ctx, fs, *natsURL)
	if err != nil {
		return err
	}
	defer c.Close()
	opts := []tasks.Option{tasks.Pool(*pool), tasks.Retries(*retries, time.Second)}
	if *timeout > 0 {
		opts = append(opts, tasks.Timeout(*timeout))
	}
	start := time.Now()
	fut := c.Run(ctx, name, v, opts...)
	// Surface a submission error (unknown function, full queue) now.
	if err := fut.Queued(ctx); err != nil {
		return err
	}
	if !*wait {
		fmt.Println(fut.ID())
		return nil
	}
	return awaitRun(ctx, c, fut, *pool, name, start)
}

// awaitRun waits for a submitted task's result and prints it. It says on
// stderr when the pool has no live worker (the task waits for one to join),
// and every progressEvery that it is still waiting.
func awaitRun(ctx context.Context, c *fray.Client, fut *tasks.Future, pool, fn string, start time.Time) error {
	announced := false
	noWorker := func() {
		if announced {
			return
		}
		if _, live := c.Producer().Workers().Serves(pool, fn); !live {
			fmt.Fprintf(os.Stderr, "fray run: no live worker serves pool %s yet; waiting (Ctrl-C to stop)\n", pool)
			announced = true
		}
	}
	noWorker()
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for {
		select {
		case <-fut.Done():
			return printResult(ctx, fut)
		case <-ctx.Done():
			return printResult(ctx, fut)
		case <-t.C:
			noWorker()
			fmt.Fprintf(os.Stderr, "fray run: still waiting for %s (submitted %s ago)\n", fut.ID(), time.Since(start).Round(time.Second))
		}
	}
}

func printResult(ctx context.Context, fut *tasks.Future) error {
	var raw objects.RawMessage
	if err := fut.Get(ctx, &raw); err != nil {
		return cliError(err)
	}
	var out any
	if len(raw) > 0 {
		if err := resultDec.Unmarshal(raw, &out); err != nil {
			return fmt.Errorf("decode the result of %s: %w", fut.ID(), err)
		}
	}
	return printJSON(jsonable(out))
}

// resultDec decodes any result for printing, including maps whose keys
// are not strings (a Go handler returning map[int]T), which JSON then
// shows with their keys as text.
var resultDec = func() cbor.DecMode {
	dm, err := cbor.DecOptions{MaxNestedLevels: 64, DefaultMapType: reflect.TypeOf(map[any]any(nil))}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// jsonable turns the maps resultDec makes into maps JSON can encode.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i := range x {
			x[i] = jsonable(x[i])
		}
		return x
	default:
		return v
	}
}

// cliError rewords a task's failure for a person: the Go type of the
// handler's error (*worker.ExecError, *errors.errorString) says nothing to
// one, a panic does.
func cliError(err error) error {
	var re *tasks.RemoteError
	if errors.As(err, &re) && re.Type != "" && re.Type != tasks.KindPanic {
		clean := *re
		clean.Type = ""
		return &clean
	}
	return err
}

func runResult(ctx context.Context, args []string) error {
	fs := newFlags("result", "ID [flags]")
	natsURL := taskClusterFlag(fs)
	wait := fs.Duration("wait", 0, "wait this long for a result not yet recorded (0: don't wait); exit 3 if none comes")
	pos, err := parsePositional(fs, args, 1, 1, "future ID (the id `fray run` printed)")
	if err != nil {
		return err
	}
	id := pos[0]
	if _, _, err := taskwire.ParseFutureID(id); err != nil {
		return usagef(fs, "bad future id %q; want <owner>.<task-id>, the id `fray run` printed", id)
	}
	if *wait < 0 {
		return usagef(fs, "--wait %s: want a positive duration, or 0 not to wait", *wait)
	}
	c, err := connectTasks(ctx, fs, *natsURL)
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
		return printResult(ctx, fut)
	}
	wctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	err = printResult(wctx, fut)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintf(os.Stderr, "fray result: no result for %s within %s (queued, running, or expired)\n", id, *wait)
		return exitError{code: 3}
	}
	return err
}
