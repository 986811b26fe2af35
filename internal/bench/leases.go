package bench

import (
	"context"
	"sync"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/nats-io/nats.go/jetstream"
)

// leaseWatch follows FRAY_WORKERS as a liveness decider does: it counts
// the lease keys that expire, and the gaps between consecutive stored
// renewals of each key.
type leaseWatch struct {
	mu      sync.Mutex
	expires int
	last    map[string]time.Time // key → its last renewal's stored time
	gapList []time.Duration      // gaps since the last resetGaps
	// expiredAt holds keys whose lease expired and was not taken back
	// yet; lost counts those not taken back within broker.ExpiryGrace
	// (the dispatcher declares such a worker lost).
	expiredAt map[string]time.Time
	lostN     int
}

// watchLeases starts a leaseWatch from now on.
func watchLeases(ctx context.Context, js jetstream.JetStream) (*leaseWatch, func(), error) {
	kv, err := js.KeyValue(ctx, broker.BucketWorkers)
	if err != nil {
		return nil, nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(wctx, jetstream.UpdatesOnly())
	if err != nil {
		cancel()
		return nil, nil, err
	}
	l := &leaseWatch{last: map[string]time.Time{}, expiredAt: map[string]time.Time{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range w.Updates() {
			if e != nil {
				l.add(e.Key(), e.Operation(), e.Created())
			}
		}
	}()
	return l, func() { cancel(); _ = w.Stop(); <-done }, nil
}

func (l *leaseWatch) add(key string, op jetstream.KeyValueOp, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if op != jetstream.KeyValuePut {
		l.expires++
		delete(l.last, key)
		l.expiredAt[key] = at
		return
	}
	if exp, ok := l.expiredAt[key]; ok {
		delete(l.expiredAt, key)
		if at.Sub(exp) > broker.ExpiryGrace {
			l.lostN++
		}
	}
	if prev, ok := l.last[key]; ok {
		l.gapList = append(l.gapList, at.Sub(prev))
	}
	l.last[key] = at
}

func (l *leaseWatch) expired() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.expires
}

// lost is how many expired leases were not taken back within
// broker.ExpiryGrace, as of now: the workers a liveness decider declares
// lost.
func (l *leaseWatch) lost() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.lostN
	for _, at := range l.expiredAt {
		if time.Since(at) > broker.ExpiryGrace {
			n++
		}
	}
	return n
}

func (l *leaseWatch) resetGaps() {
	l.mu.Lock()
	l.gapList = nil
	l.mu.Unlock()
}

// gaps returns the longest renewal gap since resetGaps and how many gaps
// exceeded two renewal periods (2/3 of ttl).
func (l *leaseWatch) gaps(ttl time.Duration) (longest time.Duration, late int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, g := range l.gapList {
		longest = max(longest, g)
		if g > 2*ttl/3 {
			late++
		}
	}
	return longest, late
}
