package tasks

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/frayhq/fray/internal/taskwire"
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
// what they held (a drain: each counts as a delivery, as for a running task
// handed back).
func (e *Executor) handBack(ms []*nats.Msg) {
	for _, m := range ms {
		m.Nak()
		e.pull.releaseUnrun()
	}
}

// handBackUncounted returns a held message that waited too long to the
// queue without using up a delivery or a retry of its task: a copy
// carrying the deliveries counted so far is queued (at the tail), then the
// original is acked, as a hand-on does. The message is released at once;
// it heartbeats meanwhile. Should the copy not be stored, the original is
// handed back with a nak.
func (e *Executor) handBackUncounted(m *nats.Msg) {
	e.pull.releaseUnrun()
	ack, err := ackMeta(m.Reply)
	_, id, ok := taskwire.ParseTaskMsgID(taskName(m))
	if err != nil || !ok {
		m.Nak()
		return
	}
	prior := 0
	if h := m.Header.Get(taskwire.HeaderPriorDeliveries); h != "" {
		prior, _ = strconv.Atoi(h)
	}
	cp := taskCopy(m, max(0, prior)+int(ack.delivered)-1, ack.streamSeq)
	if !e.resendInBackground(m, func() {
		if err := e.requeue(m, cp); err != nil {
			e.log.Warn("hand a held task back; it counts as a delivery", "task", id, "err", err)
			m.Nak()
		}
		e.pull.wake() // a parked worker may be the one free to run it
	}) {
		m.Nak()
	}
}

// requeue stores cp, a copy of m, then acks m; a few tries each.
func (e *Executor) requeue(m, cp *nats.Msg) error {
	var err error
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err = e.js.PublishMsg(ctx, cp); err == nil {
			if err = m.AckSync(nats.Context(ctx)); errors.Is(err, nats.ErrMsgAlreadyAckd) {
				err = nil
			}
		}
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(time.Duration(100*(i+1)) * time.Millisecond)
	}
	return err
}
