package tasks

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go/jetstream"
)

// WorkerView is a live, local copy of the worker registry (KV FRAY_WORKERS),
// kept current by a watch. Producers use it to refuse a function no live
// worker serves; workers use it to pass such tasks to a peer that does.
type WorkerView struct {
	mu      sync.RWMutex
	workers map[string]broker.WorkerInfo
	// fns[pool][fn] counts live workers of pool registering fn.
	fns   map[string]map[string]int
	ready chan struct{}
	done  chan struct{}
}

// WatchWorkers starts watching the registry. The watch ends with ctx; Done
// is closed then.
func WatchWorkers(ctx context.Context, js jetstream.JetStream) (*WorkerView, error) {
	kv, err := js.KeyValue(ctx, broker.BucketWorkers)
	if err != nil {
		return nil, fmt.Errorf("tasks: worker registry %s: %w", broker.BucketWorkers, err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("tasks: watch %s: %w", broker.BucketWorkers, err)
	}
	v := &WorkerView{workers: map[string]broker.WorkerInfo{}, fns: map[string]map[string]int{}, ready: make(chan struct{}), done: make(chan struct{})}
	go v.run(ctx, w)
	return v, nil
}

func (v *WorkerView) run(ctx context.Context, w jetstream.KeyWatcher) {
	defer close(v.done)
	defer w.Stop()
	readyClosed := false
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				if !readyClosed {
					close(v.ready)
					readyClosed = true
				}
				continue
			}
			v.apply(e)
		}
	}
}

func (v *WorkerView) apply(e jetstream.KeyValueEntry) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if old, ok := v.workers[e.Key()]; ok {
		for _, fn := range old.Handlers {
			v.fns[old.Pool][fn]--
		}
		delete(v.workers, e.Key())
	}
	if e.Operation() != jetstream.KeyValuePut {
		return
	}
	var info broker.WorkerInfo
	if err := objects.Unmarshal(e.Value(), &info); err != nil {
		return // a record this version cannot read is not a worker it can use
	}
	v.workers[e.Key()] = info
	m := v.fns[info.Pool]
	if m == nil {
		m = map[string]int{}
		v.fns[info.Pool] = m
	}
	for _, fn := range info.Handlers {
		m[fn]++
	}
}

// Ready is closed once the initial registry contents are loaded.
func (v *WorkerView) Ready() <-chan struct{} { return v.ready }

// Done is closed when the watch has ended.
func (v *WorkerView) Done() <-chan struct{} { return v.done }

// Serves reports whether some live worker of pool registers fn, and whether
// the pool has any live worker at all.
func (v *WorkerView) Serves(pool, fn string) (served, poolLive bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	m := v.fns[pool]
	if m[fn] > 0 {
		return true, true
	}
	for _, w := range v.workers {
		if w.Pool == pool {
			return false, true
		}
	}
	return false, false
}

// Functions lists the functions the live workers of pool register.
func (v *WorkerView) Functions(pool string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []string
	for fn, n := range v.fns[pool] {
		if n > 0 {
			out = append(out, fn)
		}
	}
	sort.Strings(out)
	return out
}

// Workers returns the live workers, sorted by id.
func (v *WorkerView) Workers() []broker.WorkerInfo {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]broker.WorkerInfo, 0, len(v.workers))
	for _, w := range v.workers {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
