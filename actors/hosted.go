package actors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"

	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Hosted is an actor served from the calling process (HostActor).
type Hosted struct {
	h  *Handle
	in *instance
}

// Handle is the hosted actor's handle.
func (x *Hosted) Handle() *Handle { return x.h }

// Shutdown stops serving and frees the name. It is idempotent.
func (x *Hosted) Shutdown(ctx context.Context) error {
	x.in.stop(stopClean, "shut down by its hosting process")
	return nil
}

// Stopped is closed once the actor stops (Shutdown, ErrStop, lease lost).
func (x *Hosted) Stopped() <-chan struct{} { return x.in.stopped }

// HostID names this process when it hosts actors: "proc-<hostname>-<pid>-<nuid>".
func (c *Client) HostID() string {
	c.hostOnce.Do(func() {
		hn, _ := os.Hostname()
		c.hostID = fmt.Sprintf("proc-%s-%d-%s", hn, os.Getpid(), nuid.Next()[:8])
	})
	return c.hostID
}

// HostActor serves impl (a pointer whose exported methods have the
// shapes Register accepts) as actor name of class className from this
// process, with no worker. The name is claimed like CreateActor (ErrExists
// if live). The actor is never restarted elsewhere; it stops with Shutdown,
// when this client closes, or when the process dies (lease expiry).
// Options that apply: Namespace, MaxConcurrency, Detached.
func (c *Client) HostActor(ctx context.Context, className, name string, impl any, opts ...CreateOption) (*Hosted, error) {
	o, err := buildOpts(c.opts.Namespace, opts)
	if err != nil {
		return nil, err
	}
	if err := checkName("actor name", name); err != nil {
		return nil, err
	}
	if impl == nil || reflect.TypeOf(impl).Kind() != reflect.Pointer {
		return nil, fmt.Errorf("actors: HostActor %s: instance must be a non-nil pointer, got %T", name, impl)
	}
	ms, err := methodsOf(reflect.TypeOf(impl))
	if err != nil {
		return nil, fmt.Errorf("actors: HostActor %s: %w", className, err)
	}
	rec := c.newRecord(className, name, "", -1, nil, o)
	rec.Pinned, rec.Host, rec.MaxRestarts = true, c.HostID(), 0
	data, err := objects.Marshal(rec)
	if err != nil {
		return nil, err
	}
	key := rec.Key()
	rev, err := c.kv.Create(ctx, key, data, jetstream.KeyTTL(claimTTL))
	if errors.Is(err, jetstream.ErrKeyExists) {
		cur, curRev, gerr := getRecord(ctx, c.kv, key)
		if gerr == nil && terminal(cur.State) {
			_ = c.kv.Delete(ctx, key, jetstream.LastRevision(curRev))
			rev, err = c.kv.Create(ctx, key, data, jetstream.KeyTTL(claimTTL))
		} else if gerr == nil && cur.Class != className {
			return nil, fmt.Errorf("%w: %s/%s exists with class %q, not %q", ErrClassMismatch, o.namespace, name, cur.Class, className)
		}
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("%w: %s/%s", ErrExists, o.namespace, name)
	}
	if err != nil {
		return nil, fmt.Errorf("actors: claim %s/%s: %w", o.namespace, name, err)
	}
	in := newInstance(c.env, c, c.HostID(), c.opts.HostLeaseTTL, rec, rev)
	in.onStop = func(in *instance) {
		c.hostedMu.Lock()
		delete(c.hosted, in)
		c.hostedMu.Unlock()
	}
	c.hostedMu.Lock()
	if c.hosted == nil {
		c.hosted = map[*instance]struct{}{}
	}
	c.hosted[in] = struct{}{}
	c.hostedMu.Unlock()
	if err := in.start(func(context.Context) (any, *methodSet, error) { return impl, ms, nil }); err != nil {
		in.onStop(in)
		return nil, fmt.Errorf("actors: HostActor %s/%s: %w", o.namespace, name, err)
	}
	return &Hosted{h: c.handle(o.namespace, name, className, rec.Epoch), in: in}, nil
}
