package bench

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// leanPublisher is how the same-work bare path publishes its tasks: as
// fray's producer does (tasks/pubacks.go), and no more. Each task carries
// a Nats-Msg-Id, so the stream deduplicates a resent task as it does
// fray's; it goes out as a core publish whose reply subject names it, at
// most maxPending await their PubAck, and a PubAck is read for an error
// without decoding its JSON (nats.go's PublishMsgAsync decodes every one
// and keeps a future per message, which fray's producer does not). A
// refused or unanswered publish (a replicated stream electing its leader)
// is sent again, with the same id.
type leanPublisher struct {
	nc    *nats.Conn
	inbox string
	slots chan struct{}
	msgs  []atomic.Pointer[nats.Msg] // a task's message until its PubAck
	sent  []atomic.Int64             // when each task was last sent (unix ns); 0 once acknowledged
	sub   *nats.Subscription

	mu     sync.Mutex
	resend []int // tasks to send again
}

const (
	leanMaxPending = 4096            // as fray's producer's MaxPending
	leanAckWait    = 5 * time.Second // a task unanswered this long is sent again
	leanRetryAfter = 50 * time.Millisecond
)

func newLeanPublisher(nc *nats.Conn, n int) (*leanPublisher, error) {
	p := &leanPublisher{nc: nc, inbox: nc.NewRespInbox(), slots: make(chan struct{}, leanMaxPending),
		msgs: make([]atomic.Pointer[nats.Msg], n), sent: make([]atomic.Int64, n)}
	var err error
	if p.sub, err = nc.Subscribe(p.inbox+".*", p.onAck); err != nil {
		return nil, err
	}
	p.sub.SetPendingLimits(-1, -1)
	return p, nil
}

func (p *leanPublisher) close() { p.sub.Unsubscribe() }

// publish sends task i (its result token i), waiting for a free slot.
func (p *leanPublisher) publish(ctx context.Context, i int, arg []byte) error {
	select {
	case p.slots <- struct{}{}:
	default:
		// Every slot awaits a PubAck: some may need sending again.
		t := time.NewTicker(leanRetryAfter)
		defer t.Stop()
	wait:
		for {
			select {
			case p.slots <- struct{}{}:
				break wait
			case now := <-t.C:
				if err := p.retry(now); err != nil {
					return err
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	m := &nats.Msg{Subject: bareTaskSubject, Data: arg, Header: nats.Header{
		"Reply":               []string{strconv.Itoa(i)},
		jetstream.MsgIDHeader: []string{nuid.Next()},
	}}
	p.msgs[i].Store(m)
	return p.send(i, m)
}

// send publishes task i's message m, on the goroutine that publishes.
func (p *leanPublisher) send(i int, m *nats.Msg) error {
	p.sent[i].Store(time.Now().UnixNano())
	m.Reply = p.inbox + "." + strconv.Itoa(i)
	return p.nc.PublishMsg(m)
}

func (p *leanPublisher) onAck(m *nats.Msg) {
	i, err := strconv.Atoi(m.Subject[len(p.inbox)+1:])
	if err != nil || i < 0 || i >= len(p.sent) {
		return
	}
	if len(m.Data) == 0 || bytes.Contains(m.Data, []byte(`"error"`)) {
		p.mu.Lock()
		p.resend = append(p.resend, i) // sent again by retry
		p.mu.Unlock()
		return
	}
	if p.sent[i].Swap(0) != 0 {
		p.msgs[i].Store(nil)
		<-p.slots // the first PubAck of the task frees its slot
	}
}

// retry sends again the tasks refused, and those unanswered for
// leanAckWait. It runs on the goroutine that publishes.
func (p *leanPublisher) retry(now time.Time) error {
	p.mu.Lock()
	again := p.resend
	p.resend = nil
	p.mu.Unlock()
	for i := range p.sent {
		if at := p.sent[i].Load(); at != 0 && now.Sub(time.Unix(0, at)) > leanAckWait {
			again = append(again, i)
		}
	}
	for _, i := range again {
		if m := p.msgs[i].Load(); m != nil {
			if err := p.send(i, m); err != nil {
				return err
			}
		}
	}
	return nil
}
