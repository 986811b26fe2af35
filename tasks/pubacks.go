package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/nats-io/nats.go"
)

// asyncPublisher publishes to JetStream without waiting, and calls each
// message's done function with the PubAck's verdict. It is what
// jetstream.PublishAsync does, without a future and two channels per
// message: one reply subscription, one table, one callback.
//
// At most maxPending messages await their PubAck, each in a slot of the
// table. A slot's reply subject (<prefix>.<number>, number in base 36)
// names it: the PubAck is found by that number, without a map, and the
// subject is made once and kept while the slot serves. A slot serves again
// under the same number only after the PubAck of its last message arrived,
// the one answer the server gives a publish; a slot given up on without
// its PubAck (timed out, failed on a reconnect, refused, closed) takes a
// new number (its old one plus maxPending), so a PubAck arriving late
// finds no slot and is dropped rather than taken for another message's.
type asyncPublisher struct {
	nc      *nats.Conn
	prefix  string
	sub     *nats.Subscription
	unwatch func() // stops the permission-error watch
	timeout time.Duration
	every   time.Duration // how often expire looks for overdue PubAcks
	// now is the time (Unix ns) of expire's last look, a message's send
	// time to within every: no clock read per message.
	now atomic.Int64

	mu sync.Mutex
	// queue holds the publishes waiting for a slot, first come first
	// served: while it is not empty a new publish queues behind it. Slots
	// are handed to them once wakeAt are free, so a full window refills
	// in batches, not with a wake-up per PubAck.
	queue  []*slotWaiter
	wakeAt int
	slots  []inflight // by position, grown up to max as needed
	free   []int      // positions of the slots not in use, a stack
	max    int        // maxPending
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

// pubAcker hears a PubAck's verdict: an interface rather than a func, so
// a record that already exists (a submission, a task run) is the callback
// and no closure is made per message.
type pubAcker interface {
	pubAcked(error)
}

// inflight is a slot: its number and reply subject, and the message it
// awaits the PubAck of (done is nil while the slot is free).
type inflight struct {
	num     uint64 // num % max is the slot's position
	reply   string // prefix + "." + num in base 36, made on first use
	done    pubAcker
	subject string
	sent    int64     // Unix ns, to within every
	held    *nats.Msg // the task message whose ack waits on this PubAck, if any
}

// slotWaiter is a publish waiting for a slot: ready closes once it is
// given one (pos) or the publisher closed (pos stays -1).
type slotWaiter struct {
	pos   int
	ready chan struct{}
}

// errPubAckTimeout means no PubAck arrived in time: the message may or may
// not be stored.
var errPubAckTimeout = errors.New("no PubAck in time")

// pubAckError is a negative PubAck.
type pubAckError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *pubAckError) Error() string {
	return fmt.Sprintf("%s (JetStream error %d)", e.Description, e.ErrCode)
}

func newAsyncPublisher(nc *nats.Conn, maxPending int, timeout time.Duration) (*asyncPublisher, error) {
	p := &asyncPublisher{nc: nc, prefix: nc.NewRespInbox(), timeout: timeout, every: min(max(timeout/4, 10*time.Millisecond), 250*time.Millisecond),
		max: max(1, maxPending), wakeAt: max(1, maxPending/16), stop: make(chan struct{}), done: make(chan struct{})}
	p.now.Store(time.Now().UnixNano())
	var err error
	p.sub, err = nc.Subscribe(p.prefix+".*", p.onAck)
	if err != nil {
		return nil, err
	}
	p.sub.SetPendingLimits(-1, -1)
	p.unwatch = broker.OnPermissionDenied(nc, p.denied)
	go p.expire()
	return p, nil
}

// publish sends m (its Reply is set here) and calls done with nil once it
// is stored, or with the error. It blocks while maxPending messages await
// their PubAck, until ctx ends. held, if not nil, is a task message whose
// ack waits on this PubAck; heldMsgs lists it until then.
func (p *asyncPublisher) publish(ctx context.Context, m *nats.Msg, held *nats.Msg, done pubAcker) error {
	reply, num, err := p.acquire(ctx, m.Subject, held, done)
	if err != nil {
		return err
	}
	m.Reply = reply
	if err := p.nc.PublishMsg(m); err != nil {
		p.take(num, true)
		return err
	}
	return nil
}

// publishData is publish for a message of data alone, no headers: no
// nats.Msg needed.
func (p *asyncPublisher) publishData(ctx context.Context, subject string, data []byte, held *nats.Msg, done pubAcker) error {
	reply, num, err := p.acquire(ctx, subject, held, done)
	if err != nil {
		return err
	}
	if err := p.nc.PublishRequest(subject, reply, data); err != nil {
		p.take(num, true)
		return err
	}
	return nil
}

// acquire takes a free slot for a message to subject, waiting for one
// (behind the publishes already waiting) while maxPending messages await
// their PubAck, until ctx ends: the reply subject to send it with, and
// the slot's number.
func (p *asyncPublisher) acquire(ctx context.Context, subject string, held *nats.Msg, done pubAcker) (reply string, num uint64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return "", 0, ErrClosed
	}
	pos := -1
	if len(p.queue) == 0 {
		pos = p.freeSlotLocked()
	}
	if pos < 0 {
		w := &slotWaiter{pos: -1, ready: make(chan struct{})}
		p.queue = append(p.queue, w)
		p.mu.Unlock()
		select {
		case <-w.ready:
		case <-ctx.Done():
		}
		p.mu.Lock()
		if pos = w.pos; pos < 0 {
			if p.closed {
				return "", 0, ErrClosed
			}
			p.queue = slices.DeleteFunc(p.queue, func(q *slotWaiter) bool { return q == w })
			return "", 0, ctx.Err()
		}
		if p.closed {
			// Given a slot just as the publisher closed: nothing would
			// hear its PubAck, so it is not sent.
			p.free = append(p.free, pos)
			return "", 0, ErrClosed
		}
		// Given a slot, it is used even if ctx ended meanwhile.
	}
	s := &p.slots[pos]
	if s.reply == "" {
		s.reply = p.prefix + "." + strconv.FormatUint(s.num, 36)
	}
	s.done, s.subject, s.sent, s.held = done, subject, p.now.Load(), held
	return s.reply, s.num, nil
}

// freeSlotLocked takes a free slot's position, or -1 if every slot awaits
// its PubAck.
func (p *asyncPublisher) freeSlotLocked() int {
	if n := len(p.free); n > 0 {
		pos := p.free[n-1]
		p.free = p.free[:n-1]
		return pos
	}
	if len(p.slots) < p.max {
		p.slots = append(p.slots, inflight{num: uint64(len(p.slots))})
		return len(p.slots) - 1
	}
	return -1
}

// heldMsgs lists the task messages whose acks wait on a PubAck.
func (p *asyncPublisher) heldMsgs() []*nats.Msg {
	p.mu.Lock()
	defer p.mu.Unlock()
	var held []*nats.Msg
	for i := range p.slots {
		if s := &p.slots[i]; s.done != nil && s.held != nil {
			held = append(held, s.held)
		}
	}
	return held
}

// take frees slot num and returns what it held; ok is false when num
// names no message awaiting its PubAck (taken already: timed out,
// refused or closed). retire gives the slot a new number: its message may
// still be answered.
func (p *asyncPublisher) take(num uint64, retire bool) (f inflight, ok bool) {
	pos := int(num % uint64(p.max))
	p.mu.Lock()
	defer p.mu.Unlock()
	if pos >= len(p.slots) {
		return inflight{}, false
	}
	s := &p.slots[pos]
	if s.num != num || s.done == nil {
		return inflight{}, false
	}
	f = *s
	s.done, s.subject, s.held = nil, "", nil
	if retire {
		s.num += uint64(p.max)
		s.reply = ""
	}
	p.free = append(p.free, pos)
	if len(p.queue) > 0 && len(p.free) >= p.wakeAt {
		// A batch of slots to the publishes waiting longest.
		n := 0
		for ; n < len(p.queue) && len(p.free) > 0; n++ {
			w := p.queue[n]
			w.pos = p.freeSlotLocked()
			close(w.ready)
		}
		p.queue = p.queue[n:]
		if len(p.queue) == 0 {
			p.queue = nil // let the emptied backing array go
		}
	}
	return f, true
}

func (p *asyncPublisher) onAck(m *nats.Msg) {
	num, err := strconv.ParseUint(m.Subject[len(p.prefix)+1:], 36, 64)
	if err != nil {
		return
	}
	f, ok := p.take(num, false)
	if !ok {
		return // timed out already
	}
	f.done.pubAcked(parsePubAck(m))
}

// busy lists the numbers of the slots awaiting a PubAck that match.
func (p *asyncPublisher) busy(match func(*inflight) bool) []uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var nums []uint64
	for i := range p.slots {
		if s := &p.slots[i]; s.done != nil && match(s) {
			nums = append(nums, s.num)
		}
	}
	return nums
}

// fail takes the slots nums and calls their messages' done with err.
func (p *asyncPublisher) fail(nums []uint64, err error) {
	for _, num := range nums {
		if f, ok := p.take(num, true); ok {
			f.done.pubAcked(err)
		}
	}
}

// denied fails at once every message waiting on a publish the server
// refused: no PubAck will come.
func (p *asyncPublisher) denied(e *broker.PermissionError) {
	if e.Op != "publish" {
		return
	}
	p.fail(p.busy(func(s *inflight) bool { return s.subject == e.Subject }), e)
}

// parsePubAck returns nil for a positive PubAck.
func parsePubAck(m *nats.Msg) error {
	if len(m.Data) == 0 {
		if m.Header != nil && m.Header.Get("Status") == "503" {
			return nats.ErrNoResponders
		}
		return errors.New("empty PubAck")
	}
	if !bytes.Contains(m.Data, []byte(`"error"`)) {
		return nil
	}
	var r struct {
		Error *pubAckError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return fmt.Errorf("unreadable PubAck %q: %w", m.Data, err)
	}
	if r.Error == nil {
		return nil
	}
	return r.Error
}

// expire fails messages whose PubAck is overdue.
// A reconnect fails at once every message still waiting: its PubAck (or
// the message itself) may have been lost with the old connection, and the
// sender resends (deduplicated) rather than wait out the timeout.
func (p *asyncPublisher) expire() {
	defer close(p.done)
	t := time.NewTicker(p.every)
	defer t.Stop()
	reconnects := p.nc.Stats().Reconnects
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			ns := now.UnixNano()
			p.now.Store(ns)
			r := p.nc.Stats().Reconnects
			reconnected := r != reconnects
			reconnects = r
			// A send time is up to every early: overdue is past both.
			late := p.busy(func(s *inflight) bool { return reconnected || time.Duration(ns-s.sent) > p.timeout+p.every })
			p.fail(late, errPubAckTimeout)
		}
	}
}

// close fails what is still pending with ErrClosed.
func (p *asyncPublisher) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for _, w := range p.queue {
		close(w.ready) // blocked publishes fail with ErrClosed
	}
	p.queue = nil
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	p.unwatch()
	p.sub.Unsubscribe()
	p.fail(p.busy(func(*inflight) bool { return true }), ErrClosed)
}

// waitIdle waits up to d for every PubAck to arrive.
func (p *asyncPublisher) waitIdle(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		n := len(p.slots) - len(p.free)
		p.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(2 * time.Millisecond) // PubAcks arrive within a round trip
	}
}
