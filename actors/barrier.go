package actors

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
)

// barrier asks one actor which of the calls a client sent before its
// connection to the broker was lost (and got back) are still running. Core
// NATS delivers at most once: a request, or its reply, may have gone with
// the connection, and nothing else would end such a call before its
// deadline. The barrier travels on the call subject behind those calls, so
// when the instance answers, each of them is running there (reported) or
// was answered, its reply published before the barrier's and read first
// (both replies come through the mux's one subscription). A call neither
// running nor answered is lost.
type barrier struct {
	t       *target
	token   string
	gen     uint64
	sent    time.Time
	futures []*Future
}

const (
	// barrierWaitMax bounds the pause between barriers an actor refused
	// (no instance subscribed: its host reconnecting, or gone).
	barrierWaitMax = 2 * time.Second
	// barrierResend is how long a barrier may go unanswered before another
	// replaces it: it may have been lost too (a host connection torn down
	// with it), or wait behind a long call of a serial instance, behind
	// which the next one queues as harmlessly.
	barrierResend = 3 * time.Second
)

func (m *mux) newBarrierLocked(t *target, fs []*Future, gen uint64) *barrier {
	if old := t.barrier; old != nil {
		delete(m.barriers, old.token) // for an earlier generation
	}
	m.next++
	b := &barrier{t: t, token: strconv.FormatUint(m.next, 36), gen: gen, sent: time.Now(), futures: fs}
	m.barriers[b.token] = b
	t.barrier = b
	return b
}

func (m *mux) dropBarrierLocked(b *barrier) {
	delete(m.barriers, b.token)
	if b.t.barrier == b {
		b.t.barrier = nil
	}
}

func (m *mux) sendBarrier(b *barrier) {
	bm := barrierMsg{V: 1, Replies: make([]string, len(b.futures))}
	for i, f := range b.futures {
		bm.Replies[i] = m.prefix + f.token
	}
	data, err := objects.Marshal(bm)
	if err == nil {
		msg := &nats.Msg{Subject: b.t.subject, Reply: m.prefix + b.token, Data: data, Header: nats.Header{}}
		msg.Header.Set(hdrBarrier, "1")
		err = m.c.nc.PublishMsg(msg)
	}
	if err != nil {
		m.mu.Lock()
		m.dropBarrierLocked(b) // the next sweep sends another
		m.mu.Unlock()
	}
}

// onBarrierReplyLocked takes b's reply, called with m.mu held; it unlocks.
func (m *mux) onBarrierReplyLocked(b *barrier, msg *nats.Msg) {
	m.dropBarrierLocked(b)
	t := b.t
	if len(msg.Data) == 0 && msg.Header != nil && msg.Header.Get("Status") == "503" {
		// No instance subscribed: ask again after a pause. (A host
		// subscribing again flushes the replies it buffered first.)
		t.barrierWait = min(max(2*t.barrierWait, 50*time.Millisecond), barrierWaitMax)
		t.nextBarrier = time.Now().Add(t.barrierWait)
		m.mu.Unlock()
		return
	}
	t.barrierWait = 0
	var rep barrierReply
	if err := objects.Unmarshal(msg.Data, &rep); err != nil {
		m.mu.Unlock()
		m.c.log.Warn("malformed actor barrier reply", "actor", t.ns+"/"+t.name, "err", err)
		return
	}
	if rep.Err != nil {
		// A host from before barriers took it for a call (and refused its
		// empty method): it cannot tell, so its calls wait for their
		// replies or deadlines, or for checkAlive, as they used to.
		for _, f := range b.futures {
			f.gen = max(f.gen, b.gen)
		}
		m.mu.Unlock()
		m.c.log.Warn("actor host does not answer barriers; calls possibly lost in a reconnect wait for their deadline", "actor", t.ns+"/"+t.name)
		return
	}
	running := make(map[string]bool, len(rep.Running))
	for _, r := range rep.Running {
		running[r] = true
	}
	var lost []*Future
	for _, f := range b.futures {
		switch {
		case m.pending[f.token] != f:
			// answered (its reply came first), or given up
		case f.gen >= b.gen:
			// sent again since the barrier was built: it travels behind
			// the barrier, which says nothing of it
		case f.epoch > rep.Epoch:
			// answered by an older instance (a stale one, still in the
			// queue group until it finds its lease lost), not the one the
			// call went to: checkAlive judges it by the record's epoch.
			// (A call to an older epoch than the one answering either
			// reached this one, or was lost with its instance.)
			f.gen = b.gen
		case running[m.prefix+f.token]:
			f.gen = b.gen // not lost: wait for its reply
		default:
			lost = append(lost, f)
		}
	}
	m.mu.Unlock()
	if len(lost) > 0 {
		go m.lost(t, lost)
	}
}

// lost redelivers or fails calls a barrier found lost. Should the record
// be unreadable, or missing (an instance answered the barrier, so its host
// is likely taking back a lease that expired while the broker was away),
// they stay pending and a later barrier, a second on, asks again; the
// sweep's checkAlive fails them once the record stays missing past
// absentLimit.
func (m *mux) lost(t *target, fs []*Future) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	rec, _, err := getRecord(ctx, m.c.kv, t.key)
	cancel()
	if err != nil {
		m.mu.Lock()
		t.nextBarrier = time.Now().Add(time.Second)
		m.mu.Unlock()
		return
	}
	var taken []*Future
	for _, f := range fs {
		if m.take(f) {
			taken = append(taken, f)
		}
	}
	m.retryOrFail(rec, taken, func(f *Future) error {
		return fmt.Errorf("%w: call %s to %s/%s was in flight when the connection to the broker was lost, and its request or its reply was lost with it (it may have run)",
			ErrActorUnavailable, f.method, t.ns, t.name)
	})
}
