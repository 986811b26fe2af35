package tasks

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/nats-io/nats.go"
)

// Parking: a large idle pool keeps few pull requests open.
//
// nats-server walks a consumer's whole list of waiting pull requests each
// time the queue runs dry, checking each request's interest with a
// lookup that misses its cache once a fleet is large: about 0.8 µs a
// request on a 2-core machine, so with 1,000 idle workers every task
// waits close to a millisecond behind the walk that followed the one
// before it. A pool of more than parkAbove live workers therefore keeps
// only about keepersPerPool of them with a request open while idle (the
// keepers); the others park: they hold no request and listen on the
// pool's wake subject (fray.wake.<pool>) in a queue group, so a wake
// reaches one parked worker. A wake is published:
//
//   - by any worker handed a task that left more queued (the task's ack
//     subject says how many): a backlog wakes one parked worker per task
//     delivered, each of which does the same, so a burst reaches every
//     worker within a few round trips;
//   - by a keeper whose slots are all taken, once a tick (at most a
//     second) while they stay taken, so a fleet whose keepers run long
//     tasks still has requests open for the next task.
//
// A woken worker asks for its free slots with a short expiry
// (parkedExpires) and parks again once a request of its ends with the
// queue dry. A worker does not know its rank in the pool, so each draws
// a number in [0, 1) at start and keeps while draw × workers <
// keepersPerPool: about keepersPerPool keepers whatever the size, and a
// growing pool only turns keepers into parkers. A pool of parkAbove or
// fewer workers, or one whose size is not known yet, keeps every worker
// (each holds one request, as before parking).
//
// The cost: a burst on a large idle pool starts on the keepers' slots and
// reaches the rest one wake per delivered task, so its first tasks wait
// a round trip or two longer; a task submitted while every keeper is busy
// and no woken worker holds a request waits for the next keeper's tick.
var (
	keepersPerPool = 32
	parkAbove      = 2 * keepersPerPool
	parkedExpires  = 2 * time.Second
	parkDraw       = rand.Float64
)

// wakeGroup is the queue group parked workers listen in.
const wakeGroup = "parked"

// parking is a puller's side of parking, guarded by the puller's mutex.
type parking struct {
	subject string  // the pool's wake subject
	draw    float64 // this worker's place in the pool, uniform in [0, 1)
	workers int     // live workers in the pool, from its directory (0: unknown)
	sub     *nats.Subscription
	woken   bool // a wake arrived: ask once although the queue ran dry
}

func newParking(pool string) parking {
	return parking{subject: broker.SubjectWakePrefix + pool, draw: parkDraw()}
}

// on reports whether the pool is large enough to park.
func (k *parking) on() bool { return k.workers > parkAbove }

// keeper reports whether this worker keeps a request open while idle.
func (k *parking) keeper() bool {
	return !k.on() || k.draw*float64(k.workers) < float64(keepersPerPool)
}

// setWorkers tells the puller how many live workers its pool has; the
// next top-up acts on it.
func (p *puller) setWorkers(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.park.workers = n
}

// parkLocked listens for wakes while parked, and only then: a wake given
// to a worker with no slot to fill would be lost.
func (p *puller) parkLocked(parked bool) {
	switch {
	case parked && p.park.sub == nil:
		sub, err := p.nc.QueueSubscribe(p.park.subject, wakeGroup, p.onWake)
		if err == nil {
			p.park.sub = sub
		}
	case !parked && p.park.sub != nil:
		p.park.sub.Unsubscribe()
		p.park.sub = nil
	}
}

// onWake asks for the free slots of a parked worker.
func (p *puller) onWake(*nats.Msg) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.park.sub == nil {
		return // no longer parked: a slot filled or a request went out
	}
	p.park.woken = true
	p.pullLocked()
}

// wakeLocked wakes one parked worker of the pool, if any.
func (p *puller) wakeLocked() {
	if p.park.on() && !p.draining {
		p.nc.Publish(p.park.subject, nil)
	}
}

// expiresLocked is how long the next request may wait. A worker's first
// request is short too: in a start-up storm the pool's directory counts
// only those registered so far, so a worker may take itself for a keeper
// of a small pool and, with a long request, stay pulling for its expiry.
func (p *puller) expiresLocked() time.Duration {
	if p.park.keeper() && p.seq > 1 {
		return p.expires
	}
	return parkedExpires
}

// poolWorkers is the number of live workers in the executor's pool, from
// its directory (0 when unknown).
func (e *Executor) poolWorkers(ctx context.Context) int {
	d, ok, err := e.view.Pool(ctx, e.o.Pool)
	if err != nil || !ok {
		return 0
	}
	return d.Workers
}
