package tasks

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// holdLimit is how long a prefetched task may wait for a slot before it is
// handed back for another worker: the slots are all taken by tasks much
// longer than the pace that let it be prefetched.
const holdLimit = time.Second

// heldTasks are the messages a prefetching executor received and no slot
// has taken yet. A slot takes a message with take; the ticker heartbeats
// the rest and hands back those waiting too long, and a drain hands them
// all back. Whoever removes a message owns it, so each is run or handed
// back exactly once.
type heldTasks struct {
	mu sync.Mutex
	m  map[*nats.Msg]time.Time // message → when received
}

func newHeldTasks() *heldTasks { return &heldTasks{m: map[*nats.Msg]time.Time{}} }

func (h *heldTasks) add(m *nats.Msg, now time.Time) {
	h.mu.Lock()
	h.m[m] = now
	h.mu.Unlock()
}

func (h *heldTasks) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.m)
}

// take removes m for a slot to run; false if it was handed back meanwhile.
func (h *heldTasks) take(m *nats.Msg) bool {
	h.mu.Lock()
	_, ok := h.m[m]
	delete(h.m, m)
	h.mu.Unlock()
	return ok
}

// removeOlder removes and returns the messages received before cutoff (all
// of them for a zero cutoff).
func (h *heldTasks) removeOlder(cutoff time.Time) []*nats.Msg {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*nats.Msg
	for m, at := range h.m {
		if cutoff.IsZero() || at.Before(cutoff) {
			out = append(out, m)
			delete(h.m, m)
		}
	}
	return out
}

// each calls f on every held message, under the lock.
func (h *heldTasks) each(f func(*nats.Msg)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for m := range h.m {
		f(m)
	}
}

// handBack returns held messages to the queue for another worker, freeing
// what they held.
func (e *Executor) handBack(ms []*nats.Msg) {
	for _, m := range ms {
		m.Nak()
		e.pull.releaseUnrun()
	}
}
