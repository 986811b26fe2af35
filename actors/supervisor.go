package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// SupervisorOptions configures a Supervisor. Every field has a default.
type SupervisorOptions struct {
	// PlacementTimeout is how long a restart waits for an eligible worker.
	// Defaults to 30 s.
	PlacementTimeout time.Duration
	// ConstructTimeout bounds a restarted instance's constructor. Defaults to
	// 2 min.
	ConstructTimeout time.Duration
	// ExpiryGrace is how long after an actor's lease key expired the
	// supervisor waits before restarting it elsewhere: a live host whose
	// renewals could not reach the stream while it elected a leader takes
	// its key back within it (and the restart's Create then loses to it).
	// Defaults to broker.ExpiryGrace.
	ExpiryGrace time.Duration
	// Logger defaults to discarding.
	Logger *slog.Logger

	// claimMargin is how much longer than PlacementTimeout a restart's
	// claim on the record lasts (claimTTL; tests shorten it).
	claimMargin time.Duration
	// sweepTick is how often the sweep looks again at lease keys it found
	// missing (1 s); resync how often it reads every standing record
	// besides at start and after each reconnect (1 min).
	sweepTick, resync time.Duration
}

// Supervisor restarts actors whose host died (lease expired) or failed
// (Fail, host stopped), while their MaxRestarts last, each time with a new
// epoch on an eligible worker (not the lost host). Run one or more per
// cluster (fray-broker and `fray up` do): a KV Create/compare-and-set on
// the record makes exactly one of them act on each event.
//
// Besides watching lease expiries, it sweeps the standing records (the
// TTL-less copy of every live actor's record): at start, after each
// reconnect and every minute it treats an actor whose lease key has been
// gone for two lease TTLs, with no instance answering on its control
// subject, as lost with its host, exactly as if it had watched the expiry.
// That covers hosts that died while no supervisor watched, in particular
// while the broker was down (a broker restarting drops expired keys before
// anyone watches).
type Supervisor struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts SupervisorOptions
	wg   sync.WaitGroup
}

// NewSupervisor returns a supervisor on nc/js.
func NewSupervisor(nc *nats.Conn, js jetstream.JetStream, opts SupervisorOptions) *Supervisor {
	if opts.PlacementTimeout <= 0 {
		opts.PlacementTimeout = 30 * time.Second
	}
	if opts.ConstructTimeout <= 0 {
		opts.ConstructTimeout = 2 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.claimMargin <= 0 {
		opts.claimMargin = claimTTL
	}
	if opts.ExpiryGrace <= 0 {
		opts.ExpiryGrace = broker.ExpiryGrace
	}
	if opts.sweepTick <= 0 {
		opts.sweepTick = time.Second
	}
	if opts.resync <= 0 {
		opts.resync = time.Minute
	}
	return &Supervisor{nc: nc, js: js, opts: opts}
}

// Run watches the registry until ctx ends, then waits for restarts in
// progress and returns nil.
func (s *Supervisor) Run(ctx context.Context) error {
	// Opening the buckets and starting the watch are retried (a broker
	// restarting, or busy with a fleet starting, is waited for); ctx ending
	// at any point of it is a clean stop.
	var e *env
	var w jetstream.KeyWatcher
	if err := broker.Retry(ctx, s.opts.Logger, "watch the actor registry", func(sctx context.Context) (err error) {
		if e == nil {
			if e, err = newEnv(sctx, s.nc, s.js, s.opts.Logger); err != nil {
				e = nil
				return err
			}
		}
		if w, err = e.kv.Watch(ctx, "a.>"); err != nil {
			return fmt.Errorf("actors: supervisor watch: %w", err)
		}
		return nil
	}); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer s.wg.Wait()
	defer func() { _ = w.Stop() }()
	// Jobs: a non-detached actor stops when its creator job ends. Without
	// the jobs bucket (an older layout) this part is off.
	var jobUpdates <-chan jetstream.KeyValueEntry
	if jkv, err := s.js.KeyValue(ctx, broker.BucketJobState); err == nil {
		if jw, err := jkv.Watch(ctx, "j.>", jetstream.IgnoreDeletes()); err == nil {
			defer func() { _ = jw.Stop() }()
			jobUpdates = jw.Updates()
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.sweeper(ctx, e)
	}()
	last := map[string]*Record{}
	for {
		var ent jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return nil
		case je := <-jobUpdates:
			if je != nil {
				s.jobChanged(ctx, e, je, last)
			}
			continue
		case ent = <-w.Updates():
		}
		if ent == nil {
			continue // end of the initial values
		}
		key := ent.Key()
		switch ent.Operation() {
		case jetstream.KeyValuePut:
			var r Record
			if err := objects.Unmarshal(ent.Value(), &r); err != nil {
				s.opts.Logger.Warn("supervisor: undecodable actor record", "key", key, "err", err)
				continue
			}
			last[key] = &r
			switch {
			case r.State == StateFailed:
				s.spawn(ctx, e, &r, ent.Revision(), false, "")
			case terminal(r.State):
				// Normally its writer removed the standing record already;
				// if it crashed first, do it before the tombstone expires.
				s.wg.Add(1)
				go func() {
					defer s.wg.Done()
					s.dropStanding(ctx, e, &r)
				}()
			}
		case jetstream.KeyValuePurge: // TTL expiry: the lease holder is gone
			prev := last[key]
			delete(last, key)
			if prev != nil && (prev.State == StateReady || prev.State == StateRestarting || prev.State == StateFailed) {
				s.spawnAfterGrace(ctx, e, prev)
			}
		case jetstream.KeyValueDelete:
			delete(last, key)
		}
	}
}

// spawnAfterGrace restarts an actor whose lease expired once ExpiryGrace
// has passed, unless its host took the key back meanwhile (the restart's
// Create then fails: the key exists).
func (s *Supervisor) spawnAfterGrace(ctx context.Context, e *env, prev *Record) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.opts.ExpiryGrace):
		}
		s.restart(ctx, e, prev, 0, true, "")
	}()
}

func (s *Supervisor) spawn(ctx context.Context, e *env, r *Record, rev uint64, expired bool, why string) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.restart(ctx, e, r, rev, expired, why)
	}()
}

// restart applies the restart policy to prev: a dead tombstone when no
// restart is left, else a new epoch placed on an eligible worker. expired
// means the record vanished (rev is then unused: the record is recreated
// with a Create, so of racing supervisors, creators and a host taking its
// lease back exactly one wins). why, if set, is the reason recorded.
func (s *Supervisor) restart(ctx context.Context, e *env, prev *Record, rev uint64, expired bool, why string) {
	key := prev.Key()
	reason := prev.Error
	if expired {
		reason = fmt.Sprintf("host %s lost (lease expired in state %s)", prev.Host, prev.State)
	}
	if why != "" {
		reason = why
	}
	write := func(r *Record, ttl time.Duration) (uint64, error) {
		data, err := objects.Marshal(r)
		if err != nil {
			return 0, err
		}
		if expired && rev == 0 {
			return e.kv.Create(ctx, key, data, jetstream.KeyTTL(ttl))
		}
		return casWrite(ctx, e.js, key, data, rev, ttl)
	}
	next := *prev
	next.Host, next.Calls, next.StartedMS = "", 0, 0
	if prev.Pinned || (prev.MaxRestarts >= 0 && prev.Restarts >= prev.MaxRestarts) {
		next.State, next.Error = StateDead, reason+"; no restarts left"
		if _, err := write(&next, TombstoneTTL); err == nil {
			s.opts.Logger.Info("actor dead", "actor", key, "reason", next.Error)
			s.dropStanding(ctx, e, &next)
		}
		return
	}
	next.State, next.Epoch, next.Restarts, next.Error = StateRestarting, prev.Epoch+1, prev.Restarts+1, reason
	// The claim must outlast the wait for an eligible worker, or it would
	// expire mid-placement and look like a second lost host.
	newRev, err := write(&next, s.opts.PlacementTimeout+s.opts.claimMargin)
	if err != nil {
		return // another supervisor or a new creator got there first
	}
	exclude := ""
	if expired {
		exclude = prev.Host
	}
	s.opts.Logger.Info("restarting actor", "actor", key, "epoch", next.Epoch, "restarts", next.Restarts, "reason", reason)
	host, err := e.place(ctx, &next, newRev, placement{timeout: s.opts.PlacementTimeout, construct: s.opts.ConstructTimeout, excludeHost: exclude})
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		next.State, next.Error = StateDead, fmt.Sprintf("restart %d failed: %v", next.Restarts, err)
		data, merr := objects.Marshal(&next)
		if merr != nil {
			return
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, werr := casWrite(wctx, e.js, key, data, newRev, TombstoneTTL)
		if errors.Is(werr, errRevMismatch) {
			_, werr = e.kv.Create(wctx, key, data, jetstream.KeyTTL(TombstoneTTL)) // the host deleted its claim
		}
		if werr == nil {
			s.dropStanding(wctx, e, &next)
		}
		s.opts.Logger.Warn("actor restart failed", "actor", key, "err", err)
		return
	}
	s.opts.Logger.Info("actor restarted", "actor", key, "epoch", next.Epoch, "host", host)
}

func (s *Supervisor) dropStanding(ctx context.Context, e *env, r *Record) {
	if err := e.dropStanding(ctx, r); err != nil {
		s.opts.Logger.Warn("actor standing record removal failed", "actor", r.Key(), "err", err)
	}
}

// sweeper restarts the actors lost while no supervisor watched: an actor
// with a standing record ("s.<ns>.<name>") but no lease key
// ("a.<ns>.<name>", absent or only its expiry marker). A host that died
// while the broker was down is the case it exists for: the broker drops
// the expired lease key when it restarts, before any watch starts.
//
// Since a live host takes back a lease that expired during an outage
// (instance.recoverLeaseLocked), a missing key only counts once it has
// stayed missing for two of the host's lease TTLs (lease_ms; several
// renewals) and no instance answers a ping on the actor's control subject
// (an instance answering makes it wait, at most four lease TTLs: it takes
// its key back or finds its lease lost and stops). Then restart applies
// the restart policy as after a watched expiry; its Create on the lease
// key races the host's sequence-checked write, and exactly one wins. A
// standing record whose lease key holds a terminal record is removed.
func (s *Supervisor) sweeper(ctx context.Context, e *env) {
	tick := time.NewTicker(s.opts.sweepTick)
	defer tick.Stop()
	missing := map[string]time.Time{} // standing key -> lease key first seen missing
	reconnects := s.nc.Stats().Reconnects
	var lastFull time.Time
	for {
		full := lastFull.IsZero() || time.Since(lastFull) >= s.opts.resync
		if r := s.nc.Stats().Reconnects; r != reconnects {
			reconnects, full = r, true
		}
		if full {
			lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			all, err := listStanding(lctx, e.kv)
			var leased []*Record
			if err == nil {
				leased, err = listRecords(lctx, e.kv, "a.>")
			}
			cancel()
			if err == nil {
				lastFull = time.Now()
				live := make(map[string]*Record, len(leased))
				for _, r := range leased {
					live[r.Key()] = r
				}
				seen := map[string]bool{}
				for _, st := range all {
					seen[st.key] = true
					if r := live[st.rec.Key()]; r != nil && !terminal(r.State) {
						delete(missing, st.key) // leased: the watch sees its expiry
						continue
					}
					s.checkStanding(ctx, e, st, missing) // reads the lease key again
				}
				for k := range missing {
					if !seen[k] {
						delete(missing, k)
					}
				}
			}
		} else {
			for k := range missing {
				gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				st, err := getStanding(gctx, e.kv, k)
				cancel()
				switch {
				case errors.Is(err, ErrNotFound):
					delete(missing, k)
				case err == nil:
					s.checkStanding(ctx, e, *st, missing)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// checkStanding looks at one standing record's lease key (see sweeper).
func (s *Supervisor) checkStanding(ctx context.Context, e *env, st standing, missing map[string]time.Time) {
	r := st.rec
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cur, _, err := getRecord(gctx, e.kv, r.Key())
	switch {
	case err == nil && terminal(cur.State):
		delete(missing, st.key)
		if cur.CreatedMS >= r.CreatedMS {
			_ = e.purgeStanding(gctx, st.key, st.rev) // its end's removal did not happen
		}
		return
	case err == nil:
		delete(missing, st.key) // leased: a watch sees its expiry
		return
	case !errors.Is(err, ErrNotFound):
		return // can't tell: look again next time
	}
	since, ok := missing[st.key]
	if !ok {
		missing[st.key] = time.Now()
		return
	}
	lease := time.Duration(r.LeaseMS) * time.Millisecond
	if lease <= 0 {
		lease = 10 * time.Second
	}
	gone := time.Since(since)
	if gone < 2*lease {
		return
	}
	if gone < 4*lease && s.instanceAnswers(gctx, r) {
		return // it takes its lease back, or stops at its next renewal
	}
	delete(missing, st.key)
	s.opts.Logger.Info("actor lease key gone while no supervisor watched", "actor", r.Key(), "epoch", r.Epoch, "host", r.Host, "state", r.State)
	s.spawn(ctx, e, r, 0, true, fmt.Sprintf("host %s lost (lease expired in state %s while no supervisor watched)", r.Host, r.State))
}

// instanceAnswers pings r's control subject: true if an instance (or
// anything) is subscribed there.
func (s *Supervisor) instanceAnswers(ctx context.Context, r *Record) bool {
	data, err := objects.Marshal(ctlMsg{V: 1, Op: "ping"})
	if err != nil {
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	_, err = s.nc.RequestWithContext(pctx, ctlSubject(r.Namespace, r.Name), data)
	return !errors.Is(err, nats.ErrNoResponders)
}

// JobEnded stops every non-detached actor created by job jobID; the jobs
// system calls it when a job reaches a terminal state.
func (s *Supervisor) JobEnded(ctx context.Context, jobID string) (int, error) {
	return StopJobActors(ctx, s.nc, s.js, jobID)
}

// jobView is the part of a jobs record (FRAY_JOB_STATE, key "j.<token>")
// the supervisor reads; see the jobs protocol.
type jobView struct {
	ID     string `cbor:"id"`
	Status string `cbor:"status"`
}

// jobChanged stops the live non-detached actors whose creator job just
// reached a terminal status.
func (s *Supervisor) jobChanged(ctx context.Context, e *env, je jetstream.KeyValueEntry, last map[string]*Record) {
	var j jobView
	if objects.Unmarshal(je.Value(), &j) != nil || j.ID == "" {
		return
	}
	if j.Status != "SUCCEEDED" && j.Status != "FAILED" && j.Status != "STOPPED" {
		return
	}
	for _, r := range last {
		if r.CreatorJob != j.ID || r.Detached || terminal(r.State) {
			continue
		}
		r := r
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := e.stopActor(ctx, r.Namespace, r.Name, "creator job "+j.ID+" ended ("+j.Status+")"); err == nil {
				s.opts.Logger.Info("stopped actor of ended job", "actor", r.Key(), "job", j.ID)
			}
		}()
	}
}
