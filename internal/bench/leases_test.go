package bench

import (
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/nats-io/nats.go/jetstream"
)

func TestALeaseWatchTellsRenewalGapsAndLeasesNotTakenBack(t *testing.T) {
	l := &leaseWatch{last: map[string]time.Time{}, expiredAt: map[string]time.Time{}}
	t0 := time.Now().Add(-time.Hour)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	l.add("a", jetstream.KeyValuePut, at(0))
	l.add("a", jetstream.KeyValuePut, at(2))
	l.add("a", jetstream.KeyValuePut, at(7)) // 5 s: more than two periods of a 6 s TTL
	l.add("b", jetstream.KeyValuePut, at(0))
	l.add("b", jetstream.KeyValuePurge, at(6))
	l.add("b", jetstream.KeyValuePut, at(6).Add(broker.ExpiryGrace/2)) // taken back in time
	l.add("c", jetstream.KeyValuePut, at(0))
	l.add("c", jetstream.KeyValuePurge, at(6))
	l.add("c", jetstream.KeyValuePut, at(6).Add(2*broker.ExpiryGrace)) // too late
	l.add("d", jetstream.KeyValuePurge, at(10))                        // never back
	if got := l.expired(); got != 3 {
		t.Errorf("expired = %d, want 3", got)
	}
	if got := l.lost(); got != 2 {
		t.Errorf("lost = %d, want 2 (c came back too late, d never)", got)
	}
	longest, late := l.gaps(6 * time.Second)
	if longest != 5*time.Second || late != 1 {
		t.Errorf("gaps: longest %v, %d late; want 5s, 1", longest, late)
	}
	l.resetGaps()
	if longest, late := l.gaps(6 * time.Second); longest != 0 || late != 0 {
		t.Errorf("after reset: %v, %d", longest, late)
	}
}
