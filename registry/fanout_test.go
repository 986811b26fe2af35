package registry_test

import (
	"context"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/registry"
	"github.com/frayhq/fray/tasks"
	"github.com/frayhq/fray/worker"
)

// A lease renewal is delivered to no worker but its own: the workers'
// registry views hear nothing while the fleet renews, and each worker's
// connection receives far fewer messages than the others' renewals. A
// change of a pool's function set does reach every view (so the count
// could fail).
func TestALeaseRenewalReachesNoOtherWorker(t *testing.T) {
	srv := frayt.Server(t)
	maintain(t, srv.ClientURL())
	_, js := frayt.Connect(t, srv.ClientURL())
	const n = 20
	// A renewal every second per worker: a shorter TTL lost leases (and
	// so rewrote the directory) whenever a loaded machine stalled the
	// test for two thirds of a second.
	ttl := 3 * time.Second
	f := startFleet(t, srv.ClientURL(), n, func(_ int, o *worker.Options) { o.LeaseTTL = ttl })
	waitPool(t, js, tasks.DefaultPool, n, "")
	frayt.Eventually(t, 20*time.Second, "every worker registered", func() bool {
		for _, w := range f.workers {
			if !w.Registered() {
				return false
			}
		}
		return true
	})
	// The views of the workers' connections (each worker shares its own
	// with its executor and plugins).
	views := make([]*registry.View, n)
	for i, w := range f.workers {
		v, err := registry.Shared(frayt.Context(t, 5*time.Second), w.NATS())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(v.Release)
		views[i] = v
	}
	// Every view holds the directory's latest write before the window, so
	// no write made before it is still on its way to one of them.
	kv, err := js.KeyValue(context.Background(), broker.BucketPools)
	if err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 20*time.Second, "every view holds the directory's latest write", func() bool {
		e, err := kv.Get(context.Background(), tasks.DefaultPool)
		var latest broker.PoolDirectory
		if err != nil || objects.Unmarshal(e.Value(), &latest) != nil {
			return false
		}
		for _, v := range views {
			d, ok, err := v.Pool(context.Background(), tasks.DefaultPool)
			if err != nil || !ok || d.Gen < latest.Gen {
				return false
			}
		}
		return true
	})
	before := make([]uint64, n)
	inBefore := make([]uint64, n)
	for i, v := range views {
		before[i] = v.Delivered()
		inBefore[i] = f.workers[i].NATS().Stats().InMsgs
	}
	ops := watchRegistry(t, js)
	const window = 6 * time.Second
	time.Sleep(window) // the measured window: renewals happen on their own
	puts, lost, _ := ops.counts()
	if len(lost) > 0 {
		t.Fatalf("leases lost while idle: %v", lost)
	}
	// Each worker renews about window/(ttl/3) = 6 times.
	if puts < n*4 {
		t.Fatalf("a decider saw %d renewals in %s, want at least %d: the test measured nothing", puts, window, n*4)
	}
	othersRenewals := uint64(puts) * (n - 1) / n
	for i, v := range views {
		if got := v.Delivered() - before[i]; got != 0 {
			t.Errorf("worker %d's registry view was sent %d messages while the fleet only renewed", i, got)
		}
		// What a worker's connection legitimately receives in the window:
		// its own renewals' acks, its pull's heartbeats, its job runner's
		// reads. The others' renewals would be about othersRenewals more.
		if got := f.workers[i].NATS().Stats().InMsgs - inBefore[i]; got >= othersRenewals/2 {
			t.Errorf("worker %d's connection received %d messages in %s, while the others renewed %d times", i, got, window, othersRenewals)
		}
	}
	// A new function in the pool is news: every view hears it.
	startFleet(t, srv.ClientURL(), 1, func(_ int, o *worker.Options) {
		o.ID, o.LeaseTTL, o.Registry = "newcomer", ttl, extraRegistry(t, "fresh.fn")
	})
	waitPool(t, js, tasks.DefaultPool, n+1, "fresh.fn")
	frayt.Eventually(t, 10*time.Second, "every view knows the new function", func() bool {
		for _, v := range views {
			if served, _ := v.Serves(tasks.DefaultPool, "fresh.fn"); !served {
				return false
			}
		}
		return true
	})
	for i, v := range views {
		if v.Delivered() == before[i] {
			t.Errorf("worker %d's view learned the new function without being sent it", i)
		}
	}
}
