package fray

import (
	"context"
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
func (c *Client) Wait(ctx context.Context, futs []*tasks.Future, n int, timeout time.Duration) (ready, pending []*tasks.Future, err error) {
	return tasks.Wait(ctx, futs, n, timeout)
}

// Put stores v (CBOR-encoded) in the object store and returns its ref.
func (c *Client) Put(ctx context.Context, v any) (objects.Ref, error) { return c.store.Put(ctx, v) }

// Get decodes the object ref names into v.
func (c *Client) Get(ctx context.Context, ref objects.Ref, v any) error {
	return c.store.Get(ctx, ref, v)
}
