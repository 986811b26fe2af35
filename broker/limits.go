package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrLimit is matched (errors.Is) by the errors ExplainLimit returns: a
// NATS or JetStream limit refused a request. Such a refusal is worth
// retrying, since the limit frees up as other clients finish.
var ErrLimit = errors.New("broker: server limit reached")

// ExplainLimit returns err annotated with the limit it hit and how to raise
// it, wrapping ErrLimit as well as err, when err is a refusal by a NATS or
// JetStream limit that a large fleet can reach. Any other err is returned
// unchanged.
func ExplainLimit(err error) error {
	if err == nil {
		return nil
	}
	var hint string
	var apiErr *jetstream.APIError
	var legacyErr *nats.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeMaximumConsumersLimit,
		errors.As(err, &legacyErr) && legacyErr.ErrorCode == nats.ErrorCode(jetstream.JSErrCodeMaximumConsumersLimit):
		hint = "a stream's consumer limit (nats-server's jetstream.limits.default_max_consumers, 1,000 per stream " +
			"unless configured, or the account's max_consumers; fray-broker lifts the default unless its --config sets it; " +
			"on your own nats-server set jetstream { limits { default_max_consumers: -1 } })"
	case errors.Is(err, nats.ErrMaxConnectionsExceeded):
		hint = "the server's connection limit (nats-server max_connections, default 65,536)"
	case errors.Is(err, nats.ErrMaxSubscriptionsExceeded):
		hint = "the account's subscription limit (nats-server max_subscriptions)"
	}
	if hint == "" {
		return err
	}
	return fmt.Errorf("%w: %s: %w", ErrLimit, hint, err)
}

// Backoff is the wait before retry number n (from 0) of a start-up step
// that the server refused or timed out: doubling from 250 ms up to 10 s,
// each wait drawn uniformly from half to all of it, so that thousands of
// processes started together spread their retries out.
func Backoff(n int) time.Duration {
	d := 250 * time.Millisecond
	for i := 0; i < n && d < 10*time.Second; i++ {
		d *= 2
	}
	d = min(d, 10*time.Second)
	return d/2 + rand.N(d/2+1)
}

// permanent marks an error that retrying cannot cure.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err so that Retry returns it at once instead of retrying.
func Permanent(err error) error { return permanent{err} }

// Retry runs step (each try bounded by 10 s) until it succeeds, fails with
// a Permanent error, or ctx ends, waiting Backoff between tries. Each
// failure is logged with what was being done and, when a server limit
// refused it, which limit to raise (ExplainLimit). It returns the
// permanent error unwrapped, or ctx's error.
func Retry(ctx context.Context, log *slog.Logger, what string, step func(context.Context) error) error {
	for n := 0; ; n++ {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := step(sctx)
		cancel()
		var p permanent
		switch {
		case err == nil:
			return nil
		case errors.As(err, &p):
			return p.err
		case ctx.Err() != nil:
			return ctx.Err()
		}
		wait := Backoff(n)
		log.Warn("cannot "+what+"; retrying", "in", wait.Round(time.Millisecond), "err", ExplainLimit(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}
