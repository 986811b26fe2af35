package registry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// poolSubjectPrefix is the prefix of the subjects FRAY_POOLS stores its
// keys under; every write reaches core subscribers of it as well.
const poolSubjectPrefix = "$KV." + broker.BucketPools + "."

// View is a process's copy of the pool directory, for the pools it asked
// about. It reads a pool's record with a direct get the first time the
// pool is asked about, then follows its changes on one core subscription
// (FRAY_POOLS's writes reach core subscribers too): no JetStream consumer,
// and nothing is delivered to it while a fleet merely renews its leases.
// After a reconnect (writes made meanwhile reached no subscriber) and every
// refreshEvery as a safety net, it reads its pools again. It is safe for
// concurrent use.
type View struct {
	nc *nats.Conn
	kv jetstream.KeyValue

	mu     sync.RWMutex
	pools  map[string]*broker.PoolDirectory // nil: asked, no record
	shared *sharedView                      // nil for a View from NewView

	sub       *nats.Subscription
	delivered atomic.Uint64
	stop      context.CancelFunc
	done      chan struct{}
}

// refreshEvery is the safety-net period at which a View reads its pools
// again (spread by up to a quarter, so that a fleet does not do it at once).
const refreshEvery = 30 * time.Second

// fetchTimeout bounds the direct get of a pool asked about for the first time.
const fetchTimeout = 2 * time.Second

var (
	sharedMu sync.Mutex
	shared   = map[*nats.Conn]*sharedView{}
)

// sharedView is a Shared View being opened (ready open) or open.
type sharedView struct {
	ready chan struct{} // closed once v or err is set
	v     *View
	err   error
	refs  int
}

// Shared returns the View of nc's process, creating it on first use: the
// client, the task executor and the plugins of one worker share it. Each
// call that returns no error must be paired with a Release. Connections
// open their views independently: a slow broker delays only the callers
// on the same connection.
func Shared(ctx context.Context, nc *nats.Conn) (*View, error) {
	for {
		sharedMu.Lock()
		sv := shared[nc]
		if sv == nil {
			sv = &sharedView{ready: make(chan struct{}), refs: 1}
			shared[nc] = sv
			sharedMu.Unlock()
			sv.v, sv.err = NewView(ctx, nc)
			sharedMu.Lock()
			if sv.err != nil {
				delete(shared, nc)
			} else {
				sv.v.shared = sv
			}
			close(sv.ready)
			sharedMu.Unlock()
			return sv.v, sv.err
		}
		sv.refs++
		sharedMu.Unlock()
		select {
		case <-ctx.Done():
			release(nc, sv)
			return nil, ctx.Err()
		case <-sv.ready:
		}
		if sv.err == nil {
			return sv.v, nil
		}
		// The opener failed (its context, say): try again ourselves.
	}
}

// release drops one reference to sv, closing its View with the last one.
func release(nc *nats.Conn, sv *sharedView) {
	sharedMu.Lock()
	sv.refs--
	last := sv.refs == 0 && sv.v != nil
	if last && shared[nc] == sv {
		delete(shared, nc)
	}
	sharedMu.Unlock()
	if last {
		sv.v.Close()
	}
}

// Release ends one Shared use of v; the last one closes it. On a View from
// NewView it is Close.
func (v *View) Release() {
	if v.shared == nil {
		v.Close()
		return
	}
	release(v.nc, v.shared)
}

// NewView starts a View of its own on nc (most callers want Shared).
func NewView(ctx context.Context, nc *nats.Conn) (*View, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	kv, err := broker.KeyValue(ctx, js, broker.BucketPools)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		// An old broker never creates the bucket: say so rather than wait
		// for it forever.
		lerr := broker.RequireLayout(ctx, js, broker.LayoutPools, "the pool directory (bucket "+broker.BucketPools+")")
		if errors.Is(lerr, broker.ErrLayoutTooOld) {
			return nil, broker.Permanent(fmt.Errorf("registry: %w", lerr))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("registry: bucket %s: %w (is the cluster provisioned by a fray-broker of this version?)", broker.BucketPools, err)
	}
	v := &View{nc: nc, kv: kv, pools: map[string]*broker.PoolDirectory{}, done: make(chan struct{})}
	if v.sub, err = nc.Subscribe(poolSubjectPrefix+">", v.onMsg); err != nil {
		return nil, fmt.Errorf("registry: subscribe to %s>: %w", poolSubjectPrefix, broker.ExplainLimit(err))
	}
	v.sub.SetPendingLimits(-1, -1)
	bg, stop := context.WithCancel(context.Background())
	v.stop = stop
	go v.refresh(bg)
	return v, nil
}

// Close stops following the directory.
func (v *View) Close() {
	v.stop()
	<-v.done
	_ = v.sub.Unsubscribe()
}

// Delivered counts the directory writes this View has been sent: none
// while the fleet only renews its leases.
func (v *View) Delivered() uint64 { return v.delivered.Load() }

func (v *View) onMsg(m *nats.Msg) {
	v.delivered.Add(1)
	pool := strings.TrimPrefix(m.Subject, poolSubjectPrefix)
	v.mu.RLock()
	_, known := v.pools[pool]
	v.mu.RUnlock()
	if !known {
		return // asked about later, with a direct get
	}
	if op := m.Header.Get("KV-Operation"); op != "" {
		v.set(pool, nil, true)
		return
	}
	var d broker.PoolDirectory
	if err := objects.Unmarshal(m.Data, &d); err != nil {
		return
	}
	v.set(pool, &d, false)
}

// set stores d for pool unless the View holds a newer record (higher Gen);
// force replaces whatever it holds (a deletion, or a fresh read).
func (v *View) set(pool string, d *broker.PoolDirectory, force bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if cur := v.pools[pool]; !force && cur != nil && d != nil && cur.Gen >= d.Gen {
		return
	}
	v.pools[pool] = d
}

// fetch reads pool's record with a direct get.
func (v *View) fetch(ctx context.Context, pool string) error {
	e, err := v.kv.Get(ctx, pool)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		v.mu.Lock()
		if v.pools[pool] == nil {
			v.pools[pool] = nil
		}
		v.mu.Unlock()
		return nil
	}
	if err != nil {
		return fmt.Errorf("registry: read pool %s: %w", pool, err)
	}
	var d broker.PoolDirectory
	if err := objects.Unmarshal(e.Value(), &d); err != nil {
		return fmt.Errorf("registry: pool %s: %w", pool, err)
	}
	v.set(pool, &d, false)
	return nil
}

func (v *View) refresh(ctx context.Context) {
	defer close(v.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	reconnects := v.nc.Stats().Reconnects
	next := time.Now().Add(refreshEvery - rand.N(refreshEvery/4))
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r := v.nc.Stats().Reconnects
			if r == reconnects && now.Before(next) || !v.nc.IsConnected() {
				continue
			}
			reconnects, next = r, now.Add(refreshEvery-rand.N(refreshEvery/4))
			v.mu.RLock()
			pools := make([]string, 0, len(v.pools))
			for p := range v.pools {
				pools = append(pools, p)
			}
			v.mu.RUnlock()
			for _, p := range pools {
				fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
				_ = v.fetch(fctx, p) // kept as it was until the next try
				cancel()
			}
		}
	}
}

// Pool returns pool's directory record; ok is false when the pool has no
// record (no worker of it ever registered while a maintainer ran). The
// first call for a pool reads it; later ones answer from memory.
func (v *View) Pool(ctx context.Context, pool string) (d broker.PoolDirectory, ok bool, err error) {
	v.mu.RLock()
	cur, known := v.pools[pool]
	v.mu.RUnlock()
	if !known {
		// Known from here on, so that a write arriving during the read is
		// kept (the higher Gen wins) rather than dropped.
		v.mu.Lock()
		if _, known = v.pools[pool]; !known {
			v.pools[pool] = nil
		}
		v.mu.Unlock()
		if err := v.fetch(ctx, pool); err != nil {
			// Unknown again unless a write arrived meanwhile, so that the
			// next call reads it rather than trusting an empty entry until
			// the periodic refresh.
			v.mu.Lock()
			if cur, ok := v.pools[pool]; ok && cur == nil {
				delete(v.pools, pool)
			}
			v.mu.Unlock()
			return d, false, err
		}
		v.mu.RLock()
		cur = v.pools[pool]
		v.mu.RUnlock()
	}
	if cur == nil {
		return d, false, nil
	}
	return *cur, true, nil
}

// Serves reports whether some live worker of pool registers fn, and
// whether the pool has any live worker at all. A pool the View cannot read
// counts as having none (nothing is refused on its account).
func (v *View) Serves(pool, fn string) (served, poolLive bool) {
	// A pool already known is answered from memory, without the context
	// (and its timer) that a first read needs: producers ask on every
	// submission.
	v.mu.RLock()
	cur, known := v.pools[pool]
	v.mu.RUnlock()
	if !known {
		ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
		defer cancel()
		d, ok, err := v.Pool(ctx, pool)
		if err != nil || !ok {
			return false, false
		}
		cur = &d
	}
	if cur == nil || cur.Workers == 0 {
		return false, false
	}
	_, found := slices.BinarySearch(cur.Functions, fn)
	return found, true
}

// Functions lists the functions the live workers of pool register.
func (v *View) Functions(pool string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	d, ok, err := v.Pool(ctx, pool)
	if err != nil || !ok || d.Workers == 0 {
		return nil
	}
	return slices.Clone(d.Functions)
}
