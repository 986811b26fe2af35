package iris

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"connectrpc.com/connect"

	"github.com/frayhq/fray/dispatcher"
)

// ErrNotFound is returned (wrapped) when Iris does not know a job.
var ErrNotFound = errors.New("iris: job not found")

// RPCError is an error answer from Iris: its Connect code and message.
type RPCError struct {
	Method  string
	Code    connect.Code
	Message string
}

func (e *RPCError) Error() string {
	return fmt.Sprintf("iris: %s: %s: %s", e.Method, e.Code, e.Message)
}

// Is makes a not_found answer match ErrNotFound and dispatcher.ErrJobNotFound.
func (e *RPCError) Is(target error) bool {
	return (target == ErrNotFound || target == dispatcher.ErrJobNotFound) && e.Code == connect.CodeNotFound
}

// retryable reports whether a failed call may succeed if repeated: the
// server was unavailable (connect-go's code for refused connections and HTTP
// 502/503/504) or aborted, or the connection broke (connect-go reports a
// reset connection as canceled even though the caller's context is live).
func retryable(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeAborted:
		return true
	case connect.CodeCanceled, connect.CodeUnknown, connect.CodeInternal:
		var ne net.Error
		return errors.As(err, &ne) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
			errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	}
	return false
}

// call runs fn, retrying retryable failures with backoff, and turns the final
// failure into an *RPCError (or the context's error).
func call[T any](ctx context.Context, b *Backend, method string, fn func(context.Context) (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		v, err := fn(ctx)
		if err == nil {
			return v, nil
		}
		var zero T
		if ctx.Err() != nil {
			return zero, fmt.Errorf("iris: %s: %w", method, ctx.Err())
		}
		code := connect.CodeOf(err)
		rerr := &RPCError{Method: method, Code: code, Message: message(err)}
		if again := retryable(err); !again || attempt >= b.retry.Attempts {
			if again {
				return zero, fmt.Errorf("%w (gave up after %d attempts)", rerr, attempt)
			}
			return zero, rerr
		}
		t := time.NewTimer(b.retry.Wait(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return zero, fmt.Errorf("%w (then %w)", rerr, ctx.Err())
		case <-t.C:
		}
	}
}

func message(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		if m := ce.Message(); m != "" {
			return m
		}
		if u := ce.Unwrap(); u != nil {
			return u.Error()
		}
	}
	return err.Error()
}
