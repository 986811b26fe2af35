package fray

import (
	"context"
	"errors"
	"sync"
)

// ErrClientClosed is returned by a sub-client accessor called after Close.
var ErrClientClosed = errors.New("fray: client closed")

// lazy builds a sub-client on first use. A build that fails is not
// remembered: the next call builds again, so a cancelled context or a
// broker blip on first use costs that call only. Builds run one at a time;
// close may run during one, and the sub-client it then produces is closed
// at once.
type lazy[T any] struct {
	build sync.Mutex // held while building

	mu      sync.Mutex // guards the fields below
	v       T
	built   bool
	closed  bool
	closeFn func() error
}

// get returns the sub-client, building it with build when none is built
// yet. build returns the sub-client and how to close it (nil for nothing).
func (l *lazy[T]) get(ctx context.Context, build func(context.Context) (T, func() error, error)) (T, error) {
	var zero T
	if v, ok, err := l.current(); ok || err != nil {
		return v, err
	}
	l.build.Lock()
	defer l.build.Unlock()
	if v, ok, err := l.current(); ok || err != nil {
		return v, err // built (or closed) while this call waited
	}
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	v, closeFn, err := build(ctx)
	if err != nil {
		return zero, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		if closeFn != nil {
			_ = closeFn()
		}
		return zero, ErrClientClosed
	}
	l.v, l.built, l.closeFn = v, true, closeFn
	return v, nil
}

// current is the built sub-client (ok), or ErrClientClosed after close.
func (l *lazy[T]) current() (v T, ok bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return v, false, ErrClientClosed
	}
	return l.v, l.built, nil
}

// close closes the sub-client if one was built; later gets fail.
func (l *lazy[T]) close() error {
	l.mu.Lock()
	l.closed = true
	closeFn := l.closeFn
	l.closeFn = nil
	l.mu.Unlock()
	if closeFn != nil {
		return closeFn()
	}
	return nil
}
