package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go/jetstream"
)

// MaintainerOptions configures a Maintainer. Every field has a default.
type MaintainerOptions struct {
	// Every is the shortest interval between two writes of one pool's
	// record: changes within it are written together. Defaults to 250 ms.
	Every time.Duration
	// ExpiryGrace is how long a worker whose lease expired still counts as
	// a member: a lease that expired while the stream elected a new leader
	// is taken back by its live holder within it. A worker that
	// deregistered (a clean stop) leaves at once. Defaults to broker.ExpiryGrace.
	ExpiryGrace time.Duration
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Maintainer keeps the pool directory (FRAY_POOLS) in step with the worker
// registry (FRAY_WORKERS). Several may run (one per broker of a cluster):
// each writes a pool's record only when it differs from the stored one,
// with a revision check, so they converge without fighting.
type Maintainer struct {
	js  jetstream.JetStream
	o   MaintainerOptions
	log *slog.Logger

	members map[string]member    // by registry key
	expired map[string]time.Time // registry keys past their TTL, until their grace ends
	stored  map[string]stored    // by pool
	dirty   map[string]bool      // pools to compare with their stored record
}

type member struct {
	pool    string
	fns     []string
	classes []string
}

type stored struct {
	dir broker.PoolDirectory
	rev uint64
}

// NewMaintainer builds a Maintainer; Run maintains.
func NewMaintainer(js jetstream.JetStream, o MaintainerOptions) *Maintainer {
	if o.Every <= 0 {
		o.Every = 250 * time.Millisecond
	}
	if o.ExpiryGrace <= 0 {
		o.ExpiryGrace = broker.ExpiryGrace
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Maintainer{js: js, o: o, log: o.Logger}
}

// Run maintains the directory until ctx ends, then returns nil. Opening the
// buckets is retried until it succeeds; Run fails when a watch ends unasked.
func (m *Maintainer) Run(ctx context.Context) error {
	m.members, m.expired, m.stored, m.dirty = map[string]member{}, map[string]time.Time{}, map[string]stored{}, map[string]bool{}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The buckets and watches are opened again until they open: a broker
	// restarting (or busy with a fleet starting) is waited for.
	var pkv jetstream.KeyValue
	var ww, pw jetstream.KeyWatcher
	err := broker.Retry(ctx, m.log, "open the worker registry", func(sctx context.Context) error {
		wkv, err := broker.KeyValue(sctx, m.js, broker.BucketWorkers)
		if err != nil {
			return fmt.Errorf("registry: bucket %s: %w", broker.BucketWorkers, err)
		}
		if pkv, err = broker.KeyValue(sctx, m.js, broker.BucketPools); err != nil {
			return fmt.Errorf("registry: bucket %s (provisioned by a fray-broker of this version): %w", broker.BucketPools, err)
		}
		if ww == nil {
			if ww, err = wkv.WatchAll(ctx); err != nil {
				return fmt.Errorf("registry: watch %s: %w", broker.BucketWorkers, err)
			}
		}
		if pw, err = pkv.WatchAll(ctx); err != nil {
			return fmt.Errorf("registry: watch %s: %w", broker.BucketPools, err)
		}
		return nil
	})
	if ww != nil {
		defer func() { _ = ww.Stop() }()
	}
	if err != nil {
		return setupErr(ctx, err)
	}
	defer func() { _ = pw.Stop() }()
	t := time.NewTicker(m.o.Every)
	defer t.Stop()
	workersLoaded, poolsLoaded := false, false
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-ww.Updates():
			if !ok {
				return closedErr(ctx, broker.BucketWorkers)
			}
			if e == nil {
				workersLoaded = true
				continue
			}
			m.onWorker(e, workersLoaded)
		case e, ok := <-pw.Updates():
			if !ok {
				return closedErr(ctx, broker.BucketPools)
			}
			if e == nil {
				poolsLoaded = true
				continue
			}
			m.onPool(e)
		case now := <-t.C:
			if !workersLoaded || !poolsLoaded {
				continue
			}
			for key, until := range m.expired {
				if now.After(until) {
					delete(m.expired, key)
					m.leave(key)
				}
			}
			m.flush(ctx, pkv)
		}
	}
}

// Start runs Run in a goroutine of its own, for a process that keeps the
// directory beside other work (a test, a bench); stop ends it and returns
// what Run returned.
func (m *Maintainer) Start() (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

// setupErr is err, or nil when ctx ended (being stopped while starting is
// no failure).
func setupErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func closedErr(ctx context.Context, bucket string) error {
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("registry: watch of %s closed", bucket)
}

// onWorker applies a FRAY_WORKERS change. A renewal that changes nothing
// the directory shows marks nothing.
func (m *Maintainer) onWorker(e jetstream.KeyValueEntry, live bool) {
	key := e.Key()
	switch e.Operation() {
	case jetstream.KeyValueDelete:
		delete(m.expired, key)
		m.leave(key)
		return
	case jetstream.KeyValuePurge: // TTL expiry
		if _, ok := m.members[key]; ok && live {
			m.expired[key] = time.Now().Add(m.o.ExpiryGrace)
		} else {
			m.leave(key)
		}
		return
	}
	delete(m.expired, key)
	var w broker.WorkerInfo
	if err := objects.Unmarshal(e.Value(), &w); err != nil || w.Pool == "" {
		m.leave(key)
		return
	}
	nm := member{pool: w.Pool, fns: sortedSet(w.Handlers), classes: sortedSet(w.ActorClasses)}
	old, ok := m.members[key]
	if ok && old.pool == nm.pool && slices.Equal(old.fns, nm.fns) && slices.Equal(old.classes, nm.classes) {
		return
	}
	if ok {
		m.dirty[old.pool] = true
	}
	m.members[key] = nm
	m.dirty[nm.pool] = true
}

func (m *Maintainer) leave(key string) {
	if old, ok := m.members[key]; ok {
		delete(m.members, key)
		m.dirty[old.pool] = true
	}
}

// onPool records a FRAY_POOLS write (its own or another maintainer's).
func (m *Maintainer) onPool(e jetstream.KeyValueEntry) {
	pool := e.Key()
	if e.Operation() != jetstream.KeyValuePut {
		delete(m.stored, pool)
		m.dirty[pool] = true
		return
	}
	var d broker.PoolDirectory
	if err := objects.Unmarshal(e.Value(), &d); err != nil {
		d = broker.PoolDirectory{} // unreadable: overwrite it
	}
	if cur, ok := m.stored[pool]; ok && cur.rev >= e.Revision() {
		return
	}
	m.stored[pool] = stored{dir: d, rev: e.Revision()}
	m.dirty[pool] = true // another maintainer's view may differ from ours
}

// want is the record pool should have now.
func (m *Maintainer) want(pool string) broker.PoolDirectory {
	d := broker.PoolDirectory{V: broker.PoolDirectoryVersion, Pool: pool}
	fns, classes := map[string]bool{}, map[string]bool{}
	for _, mb := range m.members {
		if mb.pool != pool {
			continue
		}
		d.Workers++
		for _, f := range mb.fns {
			fns[f] = true
		}
		for _, c := range mb.classes {
			classes[c] = true
		}
	}
	d.Functions, d.ActorClasses = keys(fns), keys(classes)
	return d
}

// flush writes the dirty pools whose stored record differs from want.
func (m *Maintainer) flush(ctx context.Context, kv jetstream.KeyValue) {
	for pool := range m.dirty {
		want := m.want(pool)
		cur, ok := m.stored[pool]
		if ok && sameDirectory(cur.dir, want) {
			delete(m.dirty, pool)
			continue
		}
		if !ok && want.Workers == 0 {
			delete(m.dirty, pool) // nothing stored, nothing to say
			continue
		}
		want.Gen = cur.dir.Gen + 1
		data, err := objects.Marshal(&want)
		if err != nil {
			m.log.Error("registry: encode pool directory", "pool", pool, "err", err)
			delete(m.dirty, pool)
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var rev uint64
		if ok {
			rev, err = kv.Update(wctx, pool, data, cur.rev)
		} else {
			rev, err = kv.Create(wctx, pool, data)
		}
		cancel()
		if err != nil {
			// Another maintainer wrote first (its write arrives on the
			// watch and is compared again), or the broker is away: retry
			// at the next tick either way.
			var apiErr *jetstream.APIError
			if !errors.Is(err, jetstream.ErrKeyExists) && !(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
				m.log.Warn("registry: write pool directory; will retry", "pool", pool, "err", err)
			}
			continue
		}
		m.stored[pool] = stored{dir: want, rev: rev}
		delete(m.dirty, pool)
		m.log.Debug("registry: pool directory", "pool", pool, "workers", want.Workers, "functions", len(want.Functions), "gen", want.Gen)
	}
}

func sameDirectory(a, b broker.PoolDirectory) bool {
	return a.V == b.V && a.Pool == b.Pool && a.Workers == b.Workers &&
		slices.Equal(a.Functions, b.Functions) && slices.Equal(a.ActorClasses, b.ActorClasses)
}

func sortedSet(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

func keys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
