package clusterview

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/nats-io/nats.go/jetstream"
)

// Pool is one task pool: its queue (from its consumer on FRAY_TASKS) and
// its live workers (from the registry).
type Pool struct {
	Name string `json:"name"`
	// Queued is tasks waiting for a worker; Running is tasks delivered and
	// not yet acknowledged (running, or held by a worker that died until
	// their lease lapses).
	Queued  uint64 `json:"queued"`
	Running int    `json:"running"`
	// Redelivered is tasks delivered more than once and not yet done.
	Redelivered int `json:"redelivered"`
	// Delivered counts deliveries since the consumer was made.
	Delivered uint64 `json:"delivered"`
	// Rate is deliveries per second over the last Refresh.
	Rate    float64 `json:"rate"`
	Workers int     `json:"workers"`
	Slots   int     `json:"slots"`
	Busy    int     `json:"busy"`
	// History is the pool's recent past, oldest first, one point per Refresh.
	History []Point `json:"history"`
}

// Point is one sample of a pool's history.
type Point struct {
	UnixMS  int64   `json:"t"`
	Queued  uint64  `json:"queued"`
	Running int     `json:"running"`
	Rate    float64 `json:"rate"`
}

// Stream is one JetStream stream's size (KV buckets and the object store
// are streams too: KV_<bucket>, OBJ_<bucket>).
type Stream struct {
	Name     string `json:"name"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
}

// poolConsumerPrefix is how taskwire.ConsumerName names a pool's consumer.
const poolConsumerPrefix = "pool-"

// poll reads the pool consumers and the streams. Errors are kept for the
// snapshot (PollError) and logged once per change; the last good numbers
// stay.
func (v *View) poll(ctx context.Context, js jetstream.JetStream) {
	pctx, cancel := context.WithTimeout(ctx, max(v.o.Refresh, 5*time.Second))
	defer cancel()
	now := time.Now()
	var errs []string
	type queue struct {
		queued              uint64
		running, redeliverd int
		delivered           uint64
	}
	queues := map[string]queue{}
	if s, err := js.Stream(pctx, broker.StreamTasks); err != nil {
		errs = append(errs, "tasks stream: "+err.Error())
	} else {
		l := s.ListConsumers(pctx)
		for ci := range l.Info() {
			pool, ok := strings.CutPrefix(ci.Name, poolConsumerPrefix)
			if !ok {
				continue
			}
			queues[pool] = queue{ci.NumPending, ci.NumAckPending, ci.NumRedelivered, ci.Delivered.Consumer}
		}
		if err := l.Err(); err != nil {
			errs = append(errs, "pool consumers: "+err.Error())
		}
	}
	var streams []Stream
	sl := js.ListStreams(pctx)
	for si := range sl.Info() {
		streams = append(streams, Stream{Name: si.Config.Name, Messages: si.State.Msgs, Bytes: si.State.Bytes})
	}
	if err := sl.Err(); err != nil {
		errs = append(errs, "streams: "+err.Error())
	}
	sort.Slice(streams, func(i, j int) bool { return streams[i].Name < streams[j].Name })

	v.mu.Lock()
	defer v.mu.Unlock()
	if len(streams) > 0 || sl.Err() == nil {
		v.streams = streams
	}
	elapsed := now.Sub(v.polled).Seconds()
	for name, q := range queues {
		p := v.pools[name]
		if p == nil {
			p = &Pool{Name: name}
			v.pools[name] = p
		} else if elapsed > 0 && q.delivered >= p.Delivered && !v.polled.IsZero() {
			p.Rate = float64(q.delivered-p.Delivered) / elapsed
		}
		p.Queued, p.Running, p.Redelivered, p.Delivered = q.queued, q.running, q.redeliverd, q.delivered
		p.History = append(p.History, Point{UnixMS: now.UnixMilli(), Queued: p.Queued, Running: p.Running, Rate: p.Rate})
		if len(p.History) > v.o.History {
			p.History = append(p.History[:0:0], p.History[len(p.History)-v.o.History:]...)
		}
	}
	v.polled = now
	pollErr := strings.Join(errs, "; ")
	if pollErr != v.pollErr && pollErr != "" && ctx.Err() == nil {
		v.log.Warn("cluster view: poll failed; showing the last numbers", "err", pollErr)
	}
	v.pollErr = pollErr
}
