package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// errRevMismatch means a sequence-checked write lost a race: someone else
// wrote the key (or it expired) since the expected revision.
var errRevMismatch = errors.New("actors: record changed concurrently")

// casWrite writes data to key in FRAY_ACTORS if its last revision is rev,
// with a per-key TTL (0: none), and returns the new revision. It is how a
// lease is taken over and renewed.
func casWrite(ctx context.Context, js jetstream.JetStream, key string, data []byte, rev uint64, ttl time.Duration) (uint64, error) {
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(rev)}
	if ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(ttl))
	}
	ack, err := js.Publish(ctx, "$KV."+broker.BucketActors+"."+key, data, opts...)
	if err != nil {
		return 0, casError("write", key, err)
	}
	return ack.Sequence, nil
}

// casError is the error of a sequence-checked write (verb) of key:
// errRevMismatch when it lost the race.
func casError(verb, key string, err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return fmt.Errorf("%w: %s", errRevMismatch, key)
	}
	return fmt.Errorf("actors: %s %s: %w", verb, key, err)
}

// putTTL writes data to key unconditionally with a per-key TTL.
func putTTL(ctx context.Context, js jetstream.JetStream, key string, data []byte, ttl time.Duration) error {
	var opts []jetstream.PublishOpt
	if ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(ttl))
	}
	if _, err := js.Publish(ctx, "$KV."+broker.BucketActors+"."+key, data, opts...); err != nil {
		return fmt.Errorf("actors: write %s: %w", key, err)
	}
	return nil
}

// getRecord reads an actor record; ErrNotFound when absent or deleted.
func getRecord(ctx context.Context, kv jetstream.KeyValue, key string) (*Record, uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("actors: read %s: %w", key, err)
	}
	var r Record
	if err := objects.Unmarshal(e.Value(), &r); err != nil {
		return nil, 0, fmt.Errorf("actors: record %s: %w", key, err)
	}
	return &r, e.Revision(), nil
}

// listRecords reads every live record under filter (e.g. "a.ns.>").
func listRecords(ctx context.Context, kv jetstream.KeyValue, filter string) ([]*Record, error) {
	var out []*Record
	err := eachRecord(ctx, kv, filter, func(_ jetstream.KeyValueEntry, r *Record) { out = append(out, r) })
	return out, err
}

// eachRecord calls fn with every live entry under filter and its decoded
// record, skipping entries that do not decode (not ours to fix).
func eachRecord(ctx context.Context, kv jetstream.KeyValue, filter string, fn func(jetstream.KeyValueEntry, *Record)) error {
	w, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("actors: list %s: %w", filter, err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-w.Updates():
			if e == nil {
				return nil
			}
			var r Record
			if objects.Unmarshal(e.Value(), &r) == nil {
				fn(e, &r)
			}
		}
	}
}

// listWorkers reads every live worker record.
func listWorkers(ctx context.Context, kv jetstream.KeyValue) ([]*broker.WorkerInfo, error) {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("actors: list workers: %w", err)
	}
	defer w.Stop()
	var out []*broker.WorkerInfo
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e := <-w.Updates():
			if e == nil {
				return out, nil
			}
			var wi broker.WorkerInfo
			if err := objects.Unmarshal(e.Value(), &wi); err != nil {
				continue
			}
			out = append(out, &wi)
		}
	}
}

// standingMarkerTTL is how long the marker left by removing a standing
// record stays; then the key is gone for good. A variable for tests.
var standingMarkerTTL = time.Minute

// saveStanding writes rec (an epoch that just became ready) as the actor's
// standing record, unless the standing record already holds a newer epoch
// of the same incarnation (same created_ms). Every write is
// sequence-checked against what was read, so racing writers never move it
// back to an older epoch.
func (e *env) saveStanding(ctx context.Context, rec Record) error {
	rec.Calls = 0
	data, err := objects.Marshal(&rec)
	if err != nil {
		return err
	}
	key := standingKey(rec.Namespace, rec.Name)
	for range 5 {
		ent, gerr := e.kv.Get(ctx, key)
		switch {
		case errors.Is(gerr, jetstream.ErrKeyNotFound) || errors.Is(gerr, jetstream.ErrKeyDeleted):
			_, err = e.kv.Create(ctx, key, data)
		case gerr != nil:
			return fmt.Errorf("actors: read %s: %w", key, gerr)
		default:
			var cur Record
			if objects.Unmarshal(ent.Value(), &cur) == nil && cur.CreatedMS == rec.CreatedMS && cur.Epoch > rec.Epoch {
				return nil // a newer epoch already wrote it
			}
			_, err = e.kv.Update(ctx, key, data, ent.Revision())
		}
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("actors: write %s: %w", key, err)
}

// dropStanding removes the standing record of rec's actor, which just
// reached a terminal state: only if it is of rec's incarnation and not of
// a newer epoch (sequence-checked against what was read).
func (e *env) dropStanding(ctx context.Context, rec *Record) error {
	key := standingKey(rec.Namespace, rec.Name)
	ent, err := e.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("actors: read %s: %w", key, err)
	}
	var cur Record
	if objects.Unmarshal(ent.Value(), &cur) == nil && (cur.CreatedMS != rec.CreatedMS || cur.Epoch > rec.Epoch) {
		return nil // another incarnation's, or a newer epoch's
	}
	return e.purgeStanding(ctx, key, ent.Revision())
}

// purgeStanding removes standing record key if it is still at rev: a
// delete marker with a TTL replaces it (the bucket keeps one message per
// key). Not a KV purge: once a purge marker (a subject rollup) with a TTL
// has expired, a broker that crashes (SIGKILL) brings the rolled-up record
// back when it restarts (nats-server 2.15), and the sweep would restart
// the actor; so does a "PURGE" marker without the rollup (tested). When
// the "DEL" marker expires the server writes a rollup marker of its own,
// but only while the marker is still the key's last message.
func (e *env) purgeStanding(ctx context.Context, key string, rev uint64) error {
	return removeKey(ctx, e.js, key, rev, standingMarkerTTL)
}

// removeKey removes key of FRAY_ACTORS if it is still at rev with a delete
// marker that itself goes after ttl (see purgeStanding for why this kind).
func removeKey(ctx context.Context, js jetstream.JetStream, key string, rev uint64, ttl time.Duration) error {
	m := nats.NewMsg("$KV." + broker.BucketActors + "." + key)
	m.Header.Set("KV-Operation", "DEL")
	_, err := js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(ttl))
	if err != nil {
		return casError("remove", key, err)
	}
	return nil
}

// standing is one standing record with its key and revision.
type standing struct {
	key string
	rec *Record
	rev uint64
}

// listStanding reads every standing record.
func listStanding(ctx context.Context, kv jetstream.KeyValue) ([]standing, error) {
	var out []standing
	err := eachRecord(ctx, kv, "s.>", func(e jetstream.KeyValueEntry, r *Record) {
		out = append(out, standing{key: e.Key(), rec: r, rev: e.Revision()})
	})
	return out, err
}

// getStanding reads one standing record; ErrNotFound when absent.
func getStanding(ctx context.Context, kv jetstream.KeyValue, key string) (*standing, error) {
	r, rev, err := getRecord(ctx, kv, key)
	if err != nil {
		return nil, err
	}
	return &standing{key: key, rec: r, rev: rev}, nil
}
