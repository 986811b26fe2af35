package actors

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/nats-io/nuid"
)

// Built-in classes that every fray-worker serves, for tests, benchmarks and
// demos. RegisterBuiltins adds them to a registry.
const (
	// ClassCounter is a counter: Add(n) returns the new value, Get returns
	// it, ID returns the instance's random id. Constructor argument: the
	// start value (int).
	ClassCounter = "fray.Counter"
	// ClassEcho returns its argument (Echo), does nothing (Noop), fails
	// (Fail: a method error), panics (Panic), stops (Stop: ErrStop), or
	// fails the actor (Crash: actors.Fail). Constructor argument:
	// EchoConfig.
	ClassEcho = "fray.Echo"
)

// Counter is the fray.Counter class.
type Counter struct {
	n  atomic.Int64
	id string
}

// Add adds d and returns the new value.
func (c *Counter) Add(_ context.Context, d int64) (int64, error) { return c.n.Add(d), nil }

// Get returns the value.
func (c *Counter) Get(context.Context) (int64, error) { return c.n.Load(), nil }

// ID returns the instance's random id, distinct per instance (and epoch).
func (c *Counter) ID(context.Context) (string, error) { return c.id, nil }

// EchoConfig is fray.Echo's constructor argument.
type EchoConfig struct {
	// FailIndex makes the constructor of the group member with this index
	// fail (for group tests). Nil: never.
	FailIndex *int `cbor:"fail_index,omitempty" json:"fail_index,omitempty"`
}

// Echo is the fray.Echo class.
type Echo struct{ host string }

// Echo returns v.
func (e *Echo) Echo(_ context.Context, v any) (any, error) { return v, nil }

// Noop does nothing: the benchmark's method.
func (e *Echo) Noop(context.Context, struct{}) error { return nil }

// Where returns the id of the host serving this instance.
func (e *Echo) Where(context.Context) (string, error) { return e.host, nil }

// Fail returns an error with message msg.
func (e *Echo) Fail(_ context.Context, msg string) error { return fmt.Errorf("%s", msg) }

// Panic panics with msg.
func (e *Echo) Panic(_ context.Context, msg string) error { panic(msg) }

// Stop ends the actor cleanly.
func (e *Echo) Stop(context.Context, struct{}) error { return ErrStop }

// Crash fails the actor with msg, so its restart policy applies.
func (e *Echo) Crash(ctx context.Context, msg string) error {
	return Fail(ctx, fmt.Errorf("%s", msg))
}

// RegisterBuiltins registers fray.Counter and fray.Echo in reg.
func RegisterBuiltins(reg *Registry) error {
	if err := RegisterSafely(reg, ClassCounter, func(_ context.Context, start int64) (*Counter, error) {
		c := &Counter{id: nuid.Next()}
		c.n.Store(start)
		return c, nil
	}); err != nil {
		return err
	}
	return RegisterSafely(reg, ClassEcho, func(ctx context.Context, cfg EchoConfig) (*Echo, error) {
		self, _ := Current(ctx)
		if cfg.FailIndex != nil && self.Index == *cfg.FailIndex {
			return nil, fmt.Errorf("fray.Echo: constructor of member %d fails as configured", self.Index)
		}
		return &Echo{host: self.Host}, nil
	})
}
