package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/frayhq/fray/broker"
)

// brokerMeter reads what the in-process brokers moved: the messages they
// received from and delivered to clients (and peers), and those messages'
// bytes (headers and payload; subjects are not counted). nats-server
// counts these itself (its Varz), so reading them costs the phase nothing
// per message. A nil meter reads zero (brokers in other processes).
type brokerMeter []*broker.Server

// read is the brokers' message and byte counts so far, in and out, summed.
func (m brokerMeter) read() (msgs, bytes uint64) {
	for _, s := range m {
		v, err := s.NATS().Varz(nil)
		if err != nil {
			continue // a node shutting down: its counts stop with it
		}
		msgs += uint64(v.InMsgs + v.OutMsgs)
		bytes += uint64(v.InBytes + v.OutBytes)
	}
	return msgs, bytes
}

// awaitInterest waits until every broker routes subject to a subscriber. A
// subscription made on one node of a cluster reaches the others a moment
// later, and a reply or a republished message sent from a node that has
// not heard of it yet is dropped: the bare paths, which resend neither,
// subscribe and then wait for this before they publish.
func (m brokerMeter) awaitInterest(ctx context.Context, subject string) error {
	for {
		all := true
		for _, s := range m {
			if !s.NATS().GlobalAccount().SubscriptionInterest(subject) {
				all = false
				break
			}
		}
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: not every broker routes %s to its subscriber: %w", subject, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
