package registry_test

import (
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/tasks"
	"github.com/frayhq/fray/worker"
)

// A few hundred workers, each with its own connection and fray-worker's
// plugins, all register, and none loses its lease while the fleet idles
// for several lease periods: a liveness decider watching the registry
// sees their renewals, and no key that expired without its worker taking
// it back within the deciders' grace.
func TestAFewHundredIdleWorkersKeepTheirLeases(t *testing.T) {
	srv := frayt.Server(t)
	maintain(t, srv.ClientURL())
	_, js := frayt.Connect(t, srv.ClientURL())
	const n = 300
	ttl := 6 * time.Second // fray-worker's default
	f := startFleet(t, srv.ClientURL(), n, func(_ int, o *worker.Options) { o.LeaseTTL = ttl })
	waitPool(t, js, tasks.DefaultPool, n, "fray.echo")
	// Idle from here: every worker has started (its executor pulling, its
	// plugins running).
	frayt.Eventually(t, 60*time.Second, "every worker serving", func() bool {
		for _, w := range f.workers {
			if !w.Registered() || !w.Serving() {
				return false
			}
		}
		return true
	})
	ops := watchRegistry(t, js)
	registeredPuts := 0
	window := 4 * ttl  // four lease periods, twelve renewals each
	time.Sleep(window) // the measured window: renewals happen on their own
	puts, _, _ := ops.counts()
	// An expiry near the window's end is judged after the grace.
	time.Sleep(broker.ExpiryGrace)
	_, lost, retaken := ops.counts()
	if len(lost) > 0 {
		t.Fatalf("%d of %d idle workers lost their lease (expired, not taken back within %s): %v", len(lost), n, broker.ExpiryGrace, lost)
	}
	if retaken > 0 {
		// A process starved of CPU for a lease TTL (this test runs the
		// broker and all the workers in one process) lets keys expire; the
		// workers take them back at once.
		t.Logf("%d lease expiries, each taken back by its worker within %s", retaken, broker.ExpiryGrace)
	}
	if renewals := puts - registeredPuts; renewals < n*int(window/(ttl/3))/2 {
		t.Fatalf("a decider saw %d renewals of %d workers in %s: the fleet did not renew", renewals, n, window)
	}
	for _, w := range f.workers {
		if !w.Registered() {
			t.Fatalf("worker %s is not registered after the idle window", w.ID())
		}
	}
}
