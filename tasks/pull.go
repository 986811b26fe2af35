package tasks

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// puller keeps one pull request outstanding on a durable consumer, for
// exactly as many messages as the executor has free slots, so no message is
// ever held beyond a free slot. It speaks the consumer pull protocol
// directly. Delivered messages carry their stream subject, not the request's
// reply subject, so they cannot be told apart by request: hence one request
// at a time. Status messages (heartbeat 100, expiry 408, 409) arrive on
// <inbox>.<token> and name their request.
type puller struct {
	nc        *nats.Conn
	subject   string // $JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>
	inbox     string
	slots     int
	expires   time.Duration
	heartbeat time.Duration

	mu        sync.Mutex
	seq       uint64
	open      bool   // a request is outstanding
	token     string // its token
	remaining int    // messages it may still deliver
	deadline  time.Time
	running   int // messages received and not yet released
	draining  bool
}

func newPuller(nc *nats.Conn, stream, consumer string, slots int) *puller {
	return &puller{
		nc:        nc,
		subject:   "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + consumer,
		inbox:     nc.NewRespInbox(),
		slots:     slots,
		expires:   20 * time.Second,
		heartbeat: 2 * time.Second,
	}
}

// onMsg classifies a message on the inbox: a task (true) or a status
// message handled here (false).
func (p *puller) onMsg(m *nats.Msg) bool {
	status := ""
	if len(m.Data) == 0 && m.Header != nil {
		status = m.Header.Get("Status")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if status == "" {
		p.running++
		if p.open {
			p.remaining--
			if p.remaining <= 0 {
				p.open = false
				p.pullLocked()
			}
		}
		return true
	}
	token := m.Subject[min(len(m.Subject), len(p.inbox)+1):]
	if !p.open || token != p.token {
		return false // about an earlier request
	}
	if status == "100" { // idle heartbeat: the request is alive
		p.deadline = time.Now().Add(2*p.heartbeat + time.Second)
		return false
	}
	// 408 expired, 409 limits or consumer gone, 404/503: the request is over.
	p.open = false
	p.pullLocked()
	return false
}

// release frees a slot and tops up.
func (p *puller) release() {
	p.mu.Lock()
	p.running--
	p.pullLocked()
	p.mu.Unlock()
}

// expire forgets a request that showed no sign of life (the server lost
// it, say across a reconnect) and tops up.
func (p *puller) expire(now time.Time) {
	p.mu.Lock()
	if p.open && now.After(p.deadline) {
		p.open = false
	}
	p.pullLocked()
	p.mu.Unlock()
}

func (p *puller) start() {
	p.mu.Lock()
	p.pullLocked()
	p.mu.Unlock()
}

func (p *puller) drain() {
	p.mu.Lock()
	p.draining = true
	p.mu.Unlock()
}

// pullLocked asks for the free slots when no request is open: at once when
// idle, else once at least half the slots are free, so a busy worker sends
// few requests.
func (p *puller) pullLocked() {
	if p.draining || p.open {
		return
	}
	free := p.slots - p.running
	if free <= 0 || (p.running > 0 && free < max(1, p.slots/2)) {
		return
	}
	p.seq++
	token := strconv.FormatUint(p.seq, 36)
	body := fmt.Sprintf(`{"batch":%d,"expires":%d,"idle_heartbeat":%d}`, free, p.expires.Nanoseconds(), p.heartbeat.Nanoseconds())
	if err := p.nc.PublishRequest(p.subject, p.inbox+"."+token, []byte(body)); err != nil {
		return // retried on the next release or expiry tick
	}
	p.open, p.token, p.remaining = true, token, free
	p.deadline = time.Now().Add(2*p.heartbeat + time.Second)
}
