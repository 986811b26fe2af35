package fray

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/tasks"
)

// Run submits a call of the registered function fn with arg and returns
// its future at once; submission errors (unknown function, oversized
// value, full queue) come back from the future's Get. An arg of type
// objects.Ref is passed by reference and resolved on the worker.
func (c *Client) Run(ctx context.Context, fn string, arg any, opts ...tasks.Option) *tasks.Future {
	return c.producer.Submit(ctx, fn, arg, opts...)
}

// Run is the typed form of Client.Run: the future's Get returns an R.
func Run[A, R any](ctx context.Context, c *Client, fn string, arg A, opts ...tasks.Option) tasks.TypedFuture[R] {
	return tasks.TypedFuture[R]{Future: c.producer.Submit(ctx, fn, arg, opts...)}
}

// RunRef is Run with the argument passed by reference: the worker fetches
// the object and decodes it as the function's argument.
func RunRef[R any](ctx context.Context, c *Client, fn string, arg objects.Ref, opts ...tasks.Option) tasks.TypedFuture[R] {
	return tasks.TypedFuture[R]{Future: c.producer.Submit(ctx, fn, arg, opts...)}
}

// Future returns the future with the given id, submitted by any process,
// while its result is retained.
func (c *Client) Future(id string) (*tasks.Future, error) { return c.producer.Future(id) }

// Wait returns when n of futs are done or timeout passes, with ray.wait's
// semantics (see tasks.Wait): ready (at most n) and pending, in input order.
// It takes the futures as they come, untyped (Client.Run) or typed (Run):
//
//	futs := []tasks.TypedFuture[int]{fray.Run[int, int](ctx, c, "square", 3), …}
//	ready, pending, err := fray.Wait(ctx, futs, 1, 5*time.Second)
func Wait[F tasks.Waitable](ctx context.Context, futs []F, n int, timeout time.Duration) (ready, pending []F, err error) {
	return tasks.Wait(ctx, futs, n, timeout)
}

// Put stores v (CBOR-encoded) in the object store and returns its ref.
func (c *Client) Put(ctx context.Context, v any) (objects.Ref, error) { return c.store.Put(ctx, v) }

// Get decodes the object ref names into v.
func (c *Client) Get(ctx context.Context, ref objects.Ref, v any) error {
	return c.store.Get(ctx, ref, v)
}

// ErrNotLocal is returned by Register on a client that runs no in-process
// workers (a remote cluster, or WithLocalWorkers(0, …)).
var ErrNotLocal = errors.New("fray: no in-process workers")

// Register adds handler fn for the function name to the in-process workers
// of a local cluster (Connect with "local"), after Connect, and returns
// once they announce it, so a Run right after finds it. Handlers for a
// remote cluster's workers are registered where those workers run.
func Register[A, R any](ctx context.Context, c *Client, name string, fn func(context.Context, A) (R, error)) error {
	if c.localReg == nil {
		return fmt.Errorf("%w: register %q on the workers that serve %s", ErrNotLocal, name, c.spec)
	}
	if err := tasks.RegisterSafely(c.localReg, name, fn); err != nil {
		return err
	}
	// The workers announce their handlers with each registry renewal.
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if served, _ := c.producer.Workers().Serves(tasks.DefaultPool, name); served {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fray: register %q: the local workers did not announce it: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}
