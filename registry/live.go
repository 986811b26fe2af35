package registry

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go/jetstream"
)

// Live is a full, live copy of the worker registry (every record, renewals
// included), kept by a watch of FRAY_WORKERS. It is for the few readers
// that show every worker's state as it changes (the dashboard and metrics
// beside a broker); it costs one consumer and receives every renewal, so a
// process per host must not hold one (producers and workers read the pool
// directory through a View).
type Live struct {
	mu      sync.RWMutex
	workers map[string]broker.WorkerInfo
	ready   chan struct{}
	done    chan struct{}
}

// WatchLive starts watching the registry. The watch ends with ctx; Done is
// closed then.
func WatchLive(ctx context.Context, js jetstream.JetStream) (*Live, error) {
	kv, err := broker.KeyValue(ctx, js, broker.BucketWorkers)
	if err != nil {
		return nil, fmt.Errorf("registry: bucket %s: %w", broker.BucketWorkers, err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry: watch %s: %w", broker.BucketWorkers, broker.ExplainLimit(err))
	}
	l := &Live{workers: map[string]broker.WorkerInfo{}, ready: make(chan struct{}), done: make(chan struct{})}
	go l.run(ctx, w)
	return l, nil
}

func (l *Live) run(ctx context.Context, w jetstream.KeyWatcher) {
	defer close(l.done)
	defer func() { _ = w.Stop() }()
	loaded := false
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				if !loaded {
					close(l.ready)
					loaded = true
				}
				continue
			}
			l.apply(e)
		}
	}
}

func (l *Live) apply(e jetstream.KeyValueEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.workers, e.Key())
	if e.Operation() != jetstream.KeyValuePut {
		return
	}
	var info broker.WorkerInfo
	if err := objects.Unmarshal(e.Value(), &info); err != nil {
		return // a record this version cannot read is not a worker it can show
	}
	l.workers[e.Key()] = info
}

// Ready is closed once the initial registry contents are loaded.
func (l *Live) Ready() <-chan struct{} { return l.ready }

// Done is closed when the watch has ended.
func (l *Live) Done() <-chan struct{} { return l.done }

// Workers returns the live workers, sorted by id.
func (l *Live) Workers() []broker.WorkerInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]broker.WorkerInfo, 0, len(l.workers))
	for _, w := range l.workers {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
