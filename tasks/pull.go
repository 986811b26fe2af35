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
// held beyond a free slot, unless the executor prefetches: then it also
// asks for up to prefetch more, as many as the slots would start within
// prefetchWindow at the pace of the tasks run lately (see limitLocked). It
// speaks the consumer pull protocol directly.
//
// Delivered messages carry their stream subject, not the request's reply
// subject, so they cannot be attributed to a request; the puller keeps the
// total instead: pending = messages asked for − messages received − the
// unfilled counts the server reports when a request ends (408/409 with
// Nats-Pending-Messages). A request that ends without a count (409
// Leadership Change or Consumer Deleted, which end every waiting request, 409
// Exceeded MaxWaiting, or an error such as 503 No Responders) or a reconnect
// (after which the server may or may not still hold our requests) starts a
// new epoch: pending is zeroed and reports about older requests are ignored.
//
// Requests ask for no idle heartbeats: the server's timer for them walks
// every waiting request of the consumer each time one is due, a cost that
// grows with the square of the fleet, and a request with heartbeats that
// finds the consumer's MaxWaiting reached is dropped without a word. An
// open request always ends with a status (408 at its expiry, 409 when a
// cluster's consumer leader changes), so a silence longer than its expiry
// plus silenceGrace while messages are outstanding means it is gone.
//
// A request from an older epoch can still deliver (a request outlives a
// quick reconnect, since the resubscribed inbox gives it interest again),
// so the count can be short; a message arriving when every slot is taken
// is handed straight back (nak) instead of being held without a slot.
type puller struct {
	nc       *nats.Conn
	subject  string // $JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>
	inbox    string
	slots    int           // messages run at once
	prefetch int           // the most messages held beyond the slots
	window   time.Duration // prefetchWindow, unless a test widens it
	expires  time.Duration

	mu         sync.Mutex
	seq        uint64 // last request's sequence (its token, base 36)
	epoch      uint64 // requests with seq < epoch are forgotten
	pending    int    // messages asked for and not yet delivered or ended
	running    int    // messages received and not yet released
	abandoned  int    // slots held by handlers whose attempt ended without them (see abandon)
	lastSign   time.Time
	reconnects uint64
	started    bool // start was called; no request goes out before it
	draining   bool
	failed     string        // status of the last request refused without a count
	dry        bool          // the last task delivered left the queue empty (or did not say)
	avgRun     time.Duration // moving average of a task's time in its slot; 0 until one ran
	park       parking
}

func newPuller(nc *nats.Conn, stream, consumer string, slots, prefetch int) *puller {
	return &puller{
		nc:         nc,
		subject:    "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + consumer,
		inbox:      nc.NewRespInbox(),
		slots:      slots,
		prefetch:   prefetch,
		window:     prefetchWindow,
		expires:    20 * time.Second,
		reconnects: nc.Stats().Reconnects,
	}
}

// prefetchWindow bounds how long a prefetched task is expected to wait for
// a slot: a worker holds only as many tasks beyond its slots as those would
// start within this time at the recent pace, so a pool of long tasks is
// shared out between workers as without prefetch.
const prefetchWindow = 5 * time.Millisecond

// limitLocked is how many messages the puller holds at most now: the
// slots, plus what the slots would start within prefetchWindow at the
// recent pace, up to prefetch. Nothing is prefetched until a task has run.
func (p *puller) limitLocked() int {
	if p.prefetch == 0 || p.avgRun <= 0 {
		return p.slots
	}
	extra := int(int64(p.window) * int64(p.slots) / int64(p.avgRun))
	return p.slots + min(p.prefetch, extra)
}

// prefetchExpires bounds a request that asks for more than the free
// slots: it is filled at once while the queue is busy, and must not
// linger once the queue ran dry, to take a task handed back later.
const prefetchExpires = 100 * time.Millisecond

// silenceGrace is how long past a request's expiry its 408 may take to
// arrive before the puller gives the request up.
const silenceGrace = 4 * time.Second

// Verdicts of onMsg.
const (
	pulledStatus = iota // a status message, handled here
	pulledTask          // a task message that has a slot: run it
	pulledExtra         // a task message beyond the slots: hand it back
)

// onMsg classifies a message on the inbox.
func (p *puller) onMsg(m *nats.Msg) int {
	status := ""
	if len(m.Data) == 0 && m.Header != nil {
		status = m.Header.Get("Status")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastSign = time.Now()
	if status == "" {
		p.pending = max(0, p.pending-1)
		ack, err := ackMeta(m.Reply)
		p.dry = err != nil || ack.pending == 0
		if !p.dry {
			p.wakeLocked() // more are queued: one parked worker more
		}
		// Against the hard bound, not limitLocked: a message asked for
		// while the pace allowed it is kept when the pace has slowed since.
		if p.running+p.abandoned >= p.slots+p.prefetch {
			return pulledExtra
		}
		p.running++
		if p.pending == 0 {
			p.pullLocked() // every request is filled: ask for what is still free
		}
		return pulledTask
	}
	seq, err := strconv.ParseUint(m.Subject[min(len(m.Subject), len(p.inbox)+1):], 36, 64)
	if err != nil || seq < p.epoch || status == "100" {
		return pulledStatus // a heartbeat (none are asked for), or about a forgotten request
	}
	if n := m.Header.Get("Nats-Pending-Messages"); n != "" {
		unfilled, _ := strconv.Atoi(n)
		p.pending = max(0, p.pending-unfilled)
		if status == "408" {
			p.dry = true // it waited out its expiry: the queue had nothing for it
		}
		p.pullLocked()
		return pulledStatus
	}
	// Every request may be gone. Ask again on the next tick, not now: an
	// error that persists (no responders while the consumer is missing)
	// would otherwise turn into a busy loop of requests.
	p.newEpochLocked()
	p.failed = status + " " + m.Header.Get("Description")
	return pulledStatus
}

func (p *puller) newEpochLocked() {
	p.pending = 0
	p.epoch = p.seq + 1
}

// release frees a slot whose task ran for ran, and tops up.
func (p *puller) release(ran time.Duration) {
	p.mu.Lock()
	p.running--
	if p.prefetch > 0 {
		if p.avgRun <= 0 {
			p.avgRun = max(ran, 1)
		} else {
			p.avgRun += (ran - p.avgRun) / 8
		}
	}
	p.pullLocked()
	p.mu.Unlock()
}

// slowDown takes the pace to be at least d a task on each slot: after a
// held task had to be handed back, the worker prefetches nothing (however
// many its slots) until tasks are seen to be short again.
func (p *puller) slowDown(d time.Duration) {
	p.mu.Lock()
	// Past window×slots, limitLocked allows no extra.
	p.avgRun = max(p.avgRun, max(d, 2*p.window)*time.Duration(p.slots))
	p.mu.Unlock()
}

// releaseUnrun frees what a message that never ran held (handed back, or
// dropped before a slot took it), and tops up.
func (p *puller) releaseUnrun() {
	p.mu.Lock()
	p.running--
	p.pullLocked()
	p.mu.Unlock()
}

// abandon marks a held message settled (acked or handed back) while its
// handler, which ignored its context, still runs: the slot stays taken,
// but a drain no longer waits for it. reclaim undoes it once the handler
// returns, before the slot's release.
func (p *puller) abandon() {
	p.mu.Lock()
	p.running--
	p.abandoned++
	p.mu.Unlock()
}

func (p *puller) reclaim() {
	p.mu.Lock()
	p.abandoned--
	p.running++
	p.mu.Unlock()
}

// held is the number of messages received and not yet released.
func (p *puller) held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// tick starts a new epoch after a reconnect (the server may have forgotten
// our requests) or after a silence longer than a request can last, and tops
// up. It returns the status of a request refused since the last tick, if
// any.
func (p *puller) tick(now time.Time) (failed string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.nc.Stats().Reconnects; r != p.reconnects {
		p.reconnects = r
		p.newEpochLocked()
	}
	if p.pending > 0 && now.Sub(p.lastSign) > p.expires+silenceGrace {
		p.newEpochLocked()
	}
	failed, p.failed = p.failed, ""
	if p.park.keeper() && p.running+p.abandoned >= p.slots {
		p.wakeLocked() // a busy keeper: a parked worker keeps a request open
	}
	p.pullLocked()
	return failed
}

func (p *puller) start() {
	p.mu.Lock()
	p.started = true
	p.lastSign = time.Now()
	p.pullLocked()
	p.mu.Unlock()
}

func (p *puller) drain() {
	p.mu.Lock()
	p.draining = true
	p.parkLocked(false)
	p.mu.Unlock()
}

// pullLocked asks for the free slots (and what it may prefetch, see
// limitLocked). With no request open it asks at once, so a free slot never
// idles while the queue has work. With one open, it asks again only while
// the queue is busy (the last task delivered said more were pending) and
// half of what it may hold is free, so a busy worker sends few requests. Once the queue ran dry it waits for the
// open request to be filled, which asks again at once, or to end: the
// server fills open requests before the queue keeps any work. So an idle
// worker keeps one request open (a large pool's parkers none, see
// parking), and a task on an idle fleet adds none:
// nats-server walks a consumer's whole list of waiting requests each time
// the queue runs dry and each time a request arrives.
func (p *puller) pullLocked() {
	// Before start the executor is still learning the cancellations and
	// the pool's peers: the ticker and a wake must not ask for tasks.
	if !p.started {
		return
	}
	limit := p.limitLocked()
	free := limit - p.running - p.abandoned - p.pending
	// A parker of a large pool waits for a wake instead (see parking).
	parked := !p.draining && free > 0 && p.pending == 0 && p.dry && !p.park.keeper() && !p.park.woken
	if p.parkLocked(parked); parked || p.draining {
		return
	}
	if free <= 0 || (p.pending > 0 && (p.dry || free < max(1, limit/2))) {
		return
	}
	p.park.woken = false
	p.seq++
	expires := p.expiresLocked()
	if p.running+p.abandoned+p.pending+free > p.slots {
		expires = min(expires, prefetchExpires)
	}
	body := fmt.Sprintf(`{"batch":%d,"expires":%d}`, free, expires.Nanoseconds())
	if err := p.nc.PublishRequest(p.subject, p.inbox+"."+strconv.FormatUint(p.seq, 36), []byte(body)); err != nil {
		return // retried on the next release or tick
	}
	if p.pending == 0 {
		p.lastSign = time.Now()
	}
	p.pending += free
}
