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
	// Logger defaults to discarding.
	Logger *slog.Logger

	// claimMargin is how much longer than PlacementTimeout a restart's
	// claim on the record lasts (claimTTL; tests shorten it).
	claimMargin time.Duration
}

// Supervisor restarts actors whose host died (lease expired) or failed
// (Fail, host stopped), while their MaxRestarts last, each time with a new
// epoch on an eligible worker (not the lost host). Run one or more per
// cluster (fray-broker and `fray up` do): a KV Create/compare-and-set on
// the record makes exactly one of them act on each event.
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
	return &Supervisor{nc: nc, js: js, opts: opts}
}

// Run watches the registry until ctx ends, then waits for restarts in
// progress and returns nil.
func (s *Supervisor) Run(ctx context.Context) error {
	e, err := newEnv(ctx, s.nc, s.js, s.opts.Logger)
	if err != nil {
		return err
	}
	defer s.wg.Wait()
	w, err := e.kv.Watch(ctx, "a.>")
	if err != nil {
		return fmt.Errorf("actors: supervisor watch: %w", err)
	}
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
			if r.State == StateFailed {
				s.spawn(ctx, e, &r, ent.Revision(), false)
			}
		case jetstream.KeyValuePurge: // TTL expiry: the lease holder is gone
			prev := last[key]
			delete(last, key)
			if prev != nil && (prev.State == StateReady || prev.State == StateRestarting || prev.State == StateFailed) {
				s.spawn(ctx, e, prev, 0, true)
			}
		case jetstream.KeyValueDelete:
			delete(last, key)
		}
	}
}

func (s *Supervisor) spawn(ctx context.Context, e *env, r *Record, rev uint64, expired bool) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.restart(ctx, e, r, rev, expired)
	}()
}

// restart applies the restart policy to prev: a dead tombstone when no
// restart is left, else a new epoch placed on an eligible worker. expired
// means the record vanished (rev is then unused: the record is recreated).
func (s *Supervisor) restart(ctx context.Context, e *env, prev *Record, rev uint64, expired bool) {
	key := prev.Key()
	reason := prev.Error
	if expired {
		reason = fmt.Sprintf("host %s lost (lease expired in state %s)", prev.Host, prev.State)
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
		if _, werr := casWrite(wctx, e.js, key, data, newRev, TombstoneTTL); errors.Is(werr, errRevMismatch) {
			_, _ = e.kv.Create(wctx, key, data, jetstream.KeyTTL(TombstoneTTL)) // the host deleted its claim
		}
		s.opts.Logger.Warn("actor restart failed", "actor", key, "err", err)
		return
	}
	s.opts.Logger.Info("actor restarted", "actor", key, "epoch", next.Epoch, "host", host)
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
