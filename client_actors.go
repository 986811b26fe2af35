package fray

import (
	"context"
	"time"

	"github.com/frayhq/fray/actors"
)

// Actors is the client's actor sub-client, built on first use (within
// ctx, and at most 30 s). A build that fails is tried again on the next
// call; after Close it fails with ErrClientClosed.
func (c *Client) Actors(ctx context.Context) (*actors.Client, error) {
	return c.ext.actors.get(ctx, func(ctx context.Context) (*actors.Client, func() error, error) {
		ctx, cancel := context.WithTimeout(ctx, defaultActorSetupTimeout)
		defer cancel()
		ac, err := actors.NewClient(ctx, c.nc, c.js, actors.ClientOptions{Namespace: c.namespace, Logger: c.log})
		if err != nil {
			return nil, nil, err
		}
		return ac, ac.Close, nil
	})
}

// CreateActor creates actor name of class className (registered on the
// workers) with constructor argument arg, and returns its handle once it
// serves. See actors.Client.CreateActor and the options in package actors
// (GetIfExists, Namespace, Pool, NonPreemptible, MaxConcurrency,
// MaxRestarts, MaxTaskRetries, Detached).
func (c *Client) CreateActor(ctx context.Context, className, name string, arg any, opts ...actors.CreateOption) (*actors.Handle, error) {
	ac, err := c.Actors(ctx)
	if err != nil {
		return nil, err
	}
	return ac.CreateActor(ctx, className, name, arg, opts...)
}

// GetActor returns a handle to the live actor name, or actors.ErrNotFound.
func (c *Client) GetActor(ctx context.Context, name string, opts ...actors.CreateOption) (*actors.Handle, error) {
	ac, err := c.Actors(ctx)
	if err != nil {
		return nil, err
	}
	return ac.GetActor(ctx, name, opts...)
}

// CreateActorGroup starts creating count actors name-0 … name-(count-1) and
// returns at once; see actors.Group.
func (c *Client) CreateActorGroup(ctx context.Context, className, name string, count int, arg any, opts ...actors.CreateOption) (*actors.Group, error) {
	ac, err := c.Actors(ctx)
	if err != nil {
		return nil, err
	}
	return ac.CreateActorGroup(ctx, className, name, count, arg, opts...)
}

// HostActor serves impl as actor name from this process, with no worker,
// until Shutdown or Close.
func (c *Client) HostActor(ctx context.Context, className, name string, impl any, opts ...actors.CreateOption) (*actors.Hosted, error) {
	ac, err := c.Actors(ctx)
	if err != nil {
		return nil, err
	}
	return ac.HostActor(ctx, className, name, impl, opts...)
}

// ListActors lists the actor records of namespace ns ("" for all).
func (c *Client) ListActors(ctx context.Context, ns string) ([]*actors.Record, error) {
	ac, err := c.Actors(ctx)
	if err != nil {
		return nil, err
	}
	return ac.ListActors(ctx, ns)
}

// Call calls method on the actor h with arg and decodes the result as an R.
// A handle decoded from a task argument (unbound) calls through the client
// in ctx (fray.WithClient, which workers put in every handler's context) or
// an actors client put there with actors.ContextWithClient.
func Call[R any](ctx context.Context, h *actors.Handle, method string, arg any) (R, error) {
	var r R
	if h != nil && !h.Bound() && actors.ClientFromContext(ctx) == nil {
		if c, ok := ctx.Value(clientKey{}).(*Client); ok {
			ac, err := c.Actors(ctx)
			if err != nil {
				return r, err
			}
			h = h.Bind(ac)
		}
	}
	err := h.Call(ctx, method, arg).Get(ctx, &r)
	return r, err
}

// defaultActorSetupTimeout bounds building the actor sub-client.
const defaultActorSetupTimeout = 30 * time.Second
