package tasks

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// puller keeps pull requests outstanding on a durable consumer for exactly
// as many messages as the executor has free slots, so no message is ever
// held beyond a free slot. It speaks the consumer pull protocol directly.
//
// Delivered messages carry their stream subject, not the request's reply
// subject, so they cannot be attributed to a request; the puller keeps the
// total instead: pending = messages asked for − messages received − the
// unfilled counts the server reports when a request ends (408/409 with
// Nats-Pending-Messages). A request that ends without a count (409
// Leadership Change or Consumer Deleted, which end every waiting request)
// or a reconnect (which loses them all) starts a new epoch: pending is zeroed
// and reports about older requests are ignored.
type puller struct {
	nc        *nats.Conn
	subject   string // $JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>
	inbox     string
	slots     int
	batchMin  int
	expires   time.Duration
	heartbeat time.Duration

	mu         sync.Mutex
	seq        uint64 // last request's sequence (its token, base 36)
	epoch      uint64 // requests with seq < epoch are forgotten
	pending    int    // messages asked for and not yet delivered or ended
	running    int    // messages received and not yet released
	lastSign   time.Time
	reconnects uint64
	draining   bool
}

func newPuller(nc *nats.Conn, stream, consumer string, slots int) *puller {
	return &puller{
		nc:         nc,
		subject:    "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + consumer,
		inbox:      nc.NewRespInbox(),
		slots:      slots,
		batchMin:   max(1, slots/2),
		expires:    20 * time.Second,
		heartbeat:  2 * time.Second,
		reconnects: nc.Stats().Reconnects,
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
	p.lastSign = time.Now()
	if status == "" {
		p.running++
		p.pending = max(0, p.pending-1)
		return true
	}
	seq, err := strconv.ParseUint(m.Subject[min(len(m.Subject), len(p.inbox)+1):], 36, 64)
	if err != nil || seq < p.epoch || status == "100" {
		return false // a heartbeat, or about a forgotten request
	}
	if n := m.Header.Get("Nats-Pending-Messages"); n != "" {
		unfilled, _ := strconv.Atoi(n)
		p.pending = max(0, p.pending-unfilled)
	} else {
		p.newEpochLocked()
	}
	p.pullLocked()
	return false
}

func (p *puller) newEpochLocked() {
	p.pending = 0
	p.epoch = p.seq + 1
}

// release frees a slot and tops up.
func (p *puller) release() {
	p.mu.Lock()
	p.running--
	p.pullLocked()
	p.mu.Unlock()
}

// tick starts a new epoch after a reconnect (the server forgot our
// requests) or after a silence longer than a request can last, and tops up.
func (p *puller) tick(now time.Time) {
	p.mu.Lock()
	if r := p.nc.Stats().Reconnects; r != p.reconnects {
		p.reconnects = r
		p.newEpochLocked()
	}
	if p.pending > 0 && now.Sub(p.lastSign) > p.expires+2*p.heartbeat {
		p.newEpochLocked()
	}
	p.pullLocked()
	p.mu.Unlock()
}

func (p *puller) start() {
	p.mu.Lock()
	p.lastSign = time.Now()
	p.pullLocked()
	p.mu.Unlock()
}

func (p *puller) drain() {
	p.mu.Lock()
	p.draining = true
	p.mu.Unlock()
}

// pullLocked asks for the free slots: at once when idle, else in batches
// of at least a quarter of the slots, so a busy worker sends few requests.
func (p *puller) pullLocked() {
	if p.draining {
		return
	}
	free := p.slots - p.running - p.pending
	if free <= 0 || (p.running+p.pending > 0 && free < p.batchMin) {
		return
	}
	p.seq++
	body := fmt.Sprintf(`{"batch":%d,"expires":%d,"idle_heartbeat":%d}`, free, p.expires.Nanoseconds(), p.heartbeat.Nanoseconds())
	if err := p.nc.PublishRequest(p.subject, p.inbox+"."+strconv.FormatUint(p.seq, 36), []byte(body)); err != nil {
		return // retried on the next release or tick
	}
	if p.pending == 0 {
		p.lastSign = time.Now()
	}
	p.pending += free
}
