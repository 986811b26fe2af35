package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/nats-io/nats.go"
)

// asyncPublisher publishes to JetStream without waiting, and calls each
// message's done function with the PubAck's verdict. It is what
// jetstream.PublishAsync does, without a future and two channels per
// message: one reply subscription, one map, one callback.
type asyncPublisher struct {
	nc      *nats.Conn
	prefix  string
	sub     *nats.Subscription
	unwatch func() // stops the permission-error watch
	timeout time.Duration
	slots   chan struct{} // bounds messages awaiting their PubAck

	mu      sync.Mutex
	seq     uint64
	pending map[uint64]inflight // by value: one allocation less per message
	closed  bool
	stop    chan struct{}
	done    chan struct{}
}

// pubAcker hears a PubAck's verdict: an interface rather than a func, so
// a record that already exists (a submission, a task run) is the callback
// and no closure is made per message.
type pubAcker interface {
	pubAcked(error)
}

type inflight struct {
	done    pubAcker
	subject string
	sent    time.Time
	held    *nats.Msg // the task message whose ack waits on this PubAck, if any
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
	p := &asyncPublisher{nc: nc, prefix: nc.NewRespInbox(), timeout: timeout, slots: make(chan struct{}, maxPending),
		pending: map[uint64]inflight{}, stop: make(chan struct{}), done: make(chan struct{})}
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
// their PubAck. held, if not nil, is a task message whose ack waits on
// this PubAck; heldMsgs lists it until then.
func (p *asyncPublisher) publish(m *nats.Msg, held *nats.Msg, done pubAcker) error {
	select {
	case p.slots <- struct{}{}:
	case <-p.stop:
		return ErrClosed
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		return ErrClosed
	}
	p.seq++
	seq := p.seq
	p.pending[seq] = inflight{done: done, subject: m.Subject, sent: time.Now(), held: held}
	p.mu.Unlock()
	var reply [64]byte
	m.Reply = string(strconv.AppendUint(append(append(reply[:0], p.prefix...), '.'), seq, 36))
	if err := p.nc.PublishMsg(m); err != nil {
		p.take(seq)
		return err
	}
	return nil
}

// heldMsgs lists the task messages whose acks wait on a PubAck.
func (p *asyncPublisher) heldMsgs() []*nats.Msg {
	p.mu.Lock()
	defer p.mu.Unlock()
	var held []*nats.Msg
	for _, f := range p.pending {
		if f.held != nil {
			held = append(held, f.held)
		}
	}
	return held
}

// take removes seq's entry and frees its slot; ok is false when it was
// already taken (timed out, refused or closed).
func (p *asyncPublisher) take(seq uint64) (f inflight, ok bool) {
	p.mu.Lock()
	f, ok = p.pending[seq]
	delete(p.pending, seq)
	p.mu.Unlock()
	if ok {
		<-p.slots
	}
	return f, ok
}

func (p *asyncPublisher) onAck(m *nats.Msg) {
	seq, err := strconv.ParseUint(m.Subject[len(p.prefix)+1:], 36, 64)
	if err != nil {
		return
	}
	f, ok := p.take(seq)
	if !ok {
		return // timed out already
	}
	f.done.pubAcked(parsePubAck(m))
}

// denied fails at once every message waiting on a publish the server
// refused: no PubAck will come.
func (p *asyncPublisher) denied(e *broker.PermissionError) {
	if e.Op != "publish" {
		return
	}
	var refused []uint64
	p.mu.Lock()
	for seq, f := range p.pending {
		if f.subject == e.Subject {
			refused = append(refused, seq)
		}
	}
	p.mu.Unlock()
	for _, seq := range refused {
		if f, ok := p.take(seq); ok {
			f.done.pubAcked(e)
		}
	}
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
	t := time.NewTicker(min(max(p.timeout/4, 10*time.Millisecond), 250*time.Millisecond))
	defer t.Stop()
	reconnects := p.nc.Stats().Reconnects
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			r := p.nc.Stats().Reconnects
			reconnected := r != reconnects
			reconnects = r
			var late []uint64
			p.mu.Lock()
			for seq, f := range p.pending {
				if now.Sub(f.sent) > p.timeout || reconnected {
					late = append(late, seq)
				}
			}
			p.mu.Unlock()
			for _, seq := range late {
				if f, ok := p.take(seq); ok {
					f.done.pubAcked(errPubAckTimeout)
				}
			}
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
	pending := p.pending
	p.pending = map[uint64]inflight{}
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	p.unwatch()
	p.sub.Unsubscribe()
	for range pending {
		<-p.slots
	}
	for _, f := range pending {
		f.done.pubAcked(ErrClosed)
	}
}

// waitIdle waits up to d for every PubAck to arrive.
func (p *asyncPublisher) waitIdle(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		n := len(p.pending)
		p.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(2 * time.Millisecond) // PubAcks arrive within a round trip
	}
}
