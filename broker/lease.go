package broker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrLeaseLost means a lease's key was deleted, expired or taken over by
// someone else, so the holder must stop acting as its owner.
var ErrLeaseLost = errors.New("broker: lease lost")

// ErrLeaseHeld means Acquire found the key held by a live lease.
var ErrLeaseHeld = errors.New("broker: lease held by another owner")

// ExpiryGrace is the default time a liveness decider waits, after a
// worker's lease key expired, for the same worker process to take it back
// before it declares the worker lost. It covers a stream leader election
// in a cluster (nats-server elects within 4 to 9 s of the last heartbeat,
// and a key whose TTL ran out meanwhile expires as soon as the new leader
// runs its expiry; the holder's next renewal retry, at most 1 s later,
// takes it back).
const ExpiryGrace = 5 * time.Second

// Lease is a key in a KV bucket with a per-key TTL that its holder renews.
// When the holder dies the key expires TTL later and watchers see a purge.
type Lease struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	bucket string
	key    string
	ttl    time.Duration
	rev    uint64
	// onRenewError, if set, hears each failed renewal in Keep.
	onRenewError func(error)
}

// OnRenewError makes Keep call fn with each renewal that fails (transient
// or the lease lost), for metrics. Call it before Keep.
func (l *Lease) OnRenewError(fn func(error)) { l.onRenewError = fn }

// AcquireLease claims key in bucket with value v, atomically: it fails with
// ErrLeaseHeld when a live lease holds the key. ttl must be >= 1 s.
func AcquireLease(ctx context.Context, js jetstream.JetStream, bucket, key string, v []byte, ttl time.Duration) (*Lease, error) {
	if ttl < time.Second {
		return nil, fmt.Errorf("%w: lease TTL %s under 1s", ErrBadOptions, ttl)
	}
	kv, err := KeyValue(ctx, js, bucket)
	if err != nil {
		return nil, fmt.Errorf("broker: bucket %s: %w", bucket, err)
	}
	rev, err := kv.Create(ctx, key, v, jetstream.KeyTTL(ttl))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("%w: %s/%s", ErrLeaseHeld, bucket, key)
	}
	if err != nil {
		return nil, fmt.Errorf("broker: acquire %s/%s: %w", bucket, key, err)
	}
	return &Lease{js: js, kv: kv, bucket: bucket, key: key, ttl: ttl, rev: rev}, nil
}

// ResumeLease continues a lease this process holds at revision rev but lost
// track of: a renewal the broker stored whose acknowledgement never arrived
// leaves the key at a revision the Lease does not know, so the next Renew
// fails with ErrLeaseLost although nobody else wrote it. The caller must have
// checked that the value at rev is its own.
func ResumeLease(ctx context.Context, js jetstream.JetStream, bucket, key string, rev uint64, ttl time.Duration) (*Lease, error) {
	if ttl < time.Second {
		return nil, fmt.Errorf("%w: lease TTL %s under 1s", ErrBadOptions, ttl)
	}
	kv, err := KeyValue(ctx, js, bucket)
	if err != nil {
		return nil, fmt.Errorf("broker: bucket %s: %w", bucket, err)
	}
	return &Lease{js: js, kv: kv, bucket: bucket, key: key, ttl: ttl, rev: rev}, nil
}

// Key is the leased key.
func (l *Lease) Key() string { return l.key }

// TTL is the lease's lifetime without renewal.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Revision is the key's revision after the last successful write.
func (l *Lease) Revision() uint64 { return l.rev }

// Renew writes v (nil keeps nothing: pass the current value) and restarts
// the TTL. It fails with ErrLeaseLost when someone else wrote the key or it
// expired since the last renewal.
func (l *Lease) Renew(ctx context.Context, v []byte) error {
	ack, err := l.js.Publish(ctx, "$KV."+l.bucket+"."+l.key, v,
		jetstream.WithExpectLastSequencePerSubject(l.rev), jetstream.WithMsgTTL(l.ttl))
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return fmt.Errorf("%w: %s/%s", ErrLeaseLost, l.bucket, l.key)
		}
		return fmt.Errorf("broker: renew %s/%s: %w", l.bucket, l.key, err)
	}
	l.rev = ack.Sequence
	return nil
}

// Keep renews the lease with value() every TTL/3 until ctx ends, then
// releases it. It returns ErrLeaseLost if the lease is lost, or nil after a
// release on ctx's end.
//
// A renewal that fails without a verdict (no stream leader while a
// cluster elects one, the broker restarting, a reconnect) is retried every
// RetryEvery(TTL) rather than at the next period, so the lease is renewed
// as soon as the stream answers again: a leader election (4 to 9 s in
// nats-server) costs a lease no more than the election itself. If the key
// expired meanwhile, the first renewal that reaches the new leader reports
// ErrLeaseLost at once and the holder can take the key back.
func (l *Lease) Keep(ctx context.Context, value func() []byte) error {
	period := l.ttl / 3
	t := time.NewTimer(jitter(period))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			return l.Release(rctx)
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, period)
			err := l.Renew(rctx, value())
			cancel()
			if err != nil && l.onRenewError != nil {
				l.onRenewError(err)
			}
			if errors.Is(err, ErrLeaseLost) {
				return err
			}
			if err != nil && ctx.Err() == nil {
				t.Reset(RetryEvery(l.ttl))
				continue
			}
			t.Reset(jitter(period))
		}
	}
}

// RetryEvery is how often a lease of ttl retries a renewal that failed
// without a verdict: ttl/12, between 100 ms and 1 s.
func RetryEvery(ttl time.Duration) time.Duration {
	return min(max(ttl/12, 100*time.Millisecond), time.Second)
}

// jitter spreads d by up to ±5%, so that holders started together do not
// renew in lock step.
func jitter(d time.Duration) time.Duration {
	return d - d/20 + rand.N(d/10+1)
}

// Release deletes the key if this lease still holds it.
func (l *Lease) Release(ctx context.Context) error {
	err := l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return nil // no longer ours
		}
		return fmt.Errorf("broker: release %s/%s: %w", l.bucket, l.key, err)
	}
	return nil
}
