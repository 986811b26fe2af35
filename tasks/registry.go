package tasks

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/objects"
)

// Handler is the untyped form of a task function: it receives the CBOR
// encoding of the argument and returns a value to encode as the result.
type Handler func(ctx context.Context, arg []byte) (any, error)

// Registry maps function names to handlers. It is safe for concurrent use.
type Registry struct {
	mu       sync.RWMutex
	handlers map[string]Handler
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{handlers: map[string]Handler{}} }

// Handle registers an untyped handler under name.
func (r *Registry) Handle(name string, h Handler) error {
	if err := taskwire.CheckFunction(name); err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("%w: function %q: nil handler", ErrBadName, name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.handlers[name]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicate, name)
	}
	r.handlers[name] = h
	return nil
}

// Lookup returns the handler registered under name.
func (r *Registry) Lookup(name string) (Handler, bool) {
	r.mu.RLock()
	h, ok := r.handlers[name]
	r.mu.RUnlock()
	return h, ok
}

// Names lists the registered functions, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.handlers))
	for n := range r.handlers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// RegisterSafely registers a typed function: the argument is decoded into
// A (a decoding failure is reported to the caller as ErrBadInput) and the
// returned R is encoded as the result.
func RegisterSafely[A, R any](r *Registry, name string, fn func(context.Context, A) (R, error)) error {
	if fn == nil {
		return fmt.Errorf("%w: function %q: nil func", ErrBadName, name)
	}
	return r.Handle(name, func(ctx context.Context, raw []byte) (any, error) {
		var a A
		if len(raw) > 0 {
			if err := objects.Unmarshal(raw, &a); err != nil {
				return nil, badInput{fmt.Errorf("argument of %s: %w", name, err)}
			}
		}
		return fn(ctx, a)
	})
}

// Register is RegisterSafely that panics on error, for use in main.
func Register[A, R any](r *Registry, name string, fn func(context.Context, A) (R, error)) {
	if err := RegisterSafely(r, name, fn); err != nil {
		panic(err)
	}
}

// badInput marks an argument decoding failure inside a typed handler.
type badInput struct{ err error }

func (b badInput) Error() string { return b.err.Error() }
func (b badInput) Unwrap() error { return b.err }
