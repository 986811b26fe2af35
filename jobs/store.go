package jobs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go/jetstream"
)

// Store reads and writes job records in KV FRAY_JOB_STATE with
// compare-and-set, enforcing the state machine. Programs use Client and
// Handle; Store is the layer beneath them that the dispatcher and tools
// reading job records directly (the dashboard) share.
type Store struct {
	KV jetstream.KeyValue
	js jetstream.JetStream // for the logs of a finished job whose name is reused
}

// OpenStore opens the FRAY_JOB_STATE bucket.
func OpenStore(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, broker.BucketJobState)
	if err != nil {
		return nil, fmt.Errorf("jobs: open bucket %s (is the cluster provisioned?): %w", broker.BucketJobState, err)
	}
	return &Store{KV: kv, js: js}, nil
}

// ErrNoChange, returned by an Update mutation, leaves the record unwritten.
var ErrNoChange = errors.New("jobs: no change")

// DecodeRecord decodes a record's bytes.
func DecodeRecord(b []byte) (*Record, error) {
	var r Record
	if err := objects.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Get returns the record of job id and its revision, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*Record, uint64, error) {
	e, err := s.KV.Get(ctx, jobwire.JobKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("jobs: get %s: %w", id, err)
	}
	r, err := DecodeRecord(e.Value())
	if err != nil {
		return nil, 0, fmt.Errorf("jobs: record %s: %w", id, err)
	}
	return r, e.Revision(), nil
}

// Put writes r at revision rev (0 = must not exist), enforcing the state
// machine against prev (the record at rev, nil when creating). It returns
// the new revision; a lost race wraps jetstream.ErrKeyRevisionMismatch or
// jetstream.ErrKeyExists.
func (s *Store) Put(ctx context.Context, r *Record, prev *Record, rev uint64) (uint64, error) {
	if prev != nil {
		if err := checkTransition(r.ID, prev.Status, r.Status); err != nil {
			return 0, err
		}
	}
	r.V = jobwire.RecordVersion
	r.UpdatedMS = jobwire.NowMS()
	b, err := objects.Marshal(r)
	if err != nil {
		return 0, err
	}
	if rev == 0 {
		return s.KV.Create(ctx, jobwire.JobKey(r.ID), b)
	}
	return s.KV.Update(ctx, jobwire.JobKey(r.ID), b, rev)
}

// IsConflict reports whether err is a lost compare-and-set race.
func IsConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

// Update applies mutate to the latest record of id and writes it with
// compare-and-set, retrying on a lost race. mutate may return ErrNoChange to
// skip the write. It returns the record as written (or as read on
// ErrNoChange) and its revision.
func (s *Store) Update(ctx context.Context, id string, mutate func(*Record) error) (*Record, uint64, error) {
	for {
		cur, rev, err := s.Get(ctx, id)
		if err != nil {
			return nil, 0, err
		}
		prev := *cur
		if err := mutate(cur); err != nil {
			if errors.Is(err, ErrNoChange) {
				return &prev, rev, nil
			}
			return nil, 0, err
		}
		nrev, err := s.Put(ctx, cur, &prev, rev)
		if IsConflict(err) {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		return cur, nrev, nil
	}
}

// CreateOrAdopt stores rec as a new job. When a job of the same id exists:
// a live one is returned with adopted = true if adopt, else an
// *AlreadyExistsError; a finished one is replaced by rec.
func (s *Store) CreateOrAdopt(ctx context.Context, rec *Record, adopt bool) (out *Record, rev uint64, adopted bool, err error) {
	for try := 0; ; try++ {
		if try == 20 {
			return nil, 0, false, fmt.Errorf("jobs: create %s: too many concurrent writers", rec.ID)
		}
		rev, err = s.Put(ctx, rec, nil, 0)
		if err == nil {
			return rec, rev, false, nil
		}
		if !IsConflict(err) {
			return nil, 0, false, fmt.Errorf("jobs: create %s: %w", rec.ID, err)
		}
		old, orev, gerr := s.Get(ctx, rec.ID)
		if errors.Is(gerr, ErrNotFound) {
			continue // deleted in between; Create handles delete markers
		} else if gerr != nil {
			return nil, 0, false, gerr
		} else if !old.Status.Terminal() {
			if adopt {
				return old, orev, true, nil
			}
			return old, orev, false, &AlreadyExistsError{ID: rec.ID}
		}
		// A finished job's name is reused: its logs go with it, so the new
		// run's lines never mix with the old run's.
		s.purgeLogs(ctx, rec.ID)
		rec.V = jobwire.RecordVersion
		rec.UpdatedMS = jobwire.NowMS()
		b, merr := objects.Marshal(rec)
		if merr != nil {
			return nil, 0, false, merr
		}
		rev, err = s.KV.Update(ctx, jobwire.JobKey(rec.ID), b, orev)
		if err == nil {
			return rec, rev, false, nil
		}
		if !IsConflict(err) {
			return nil, 0, false, fmt.Errorf("jobs: replace finished %s: %w", rec.ID, err)
		}
	}
}

// purgeLogs drops job id's log batches from FRAY_LOGS (best effort: a
// failure leaves old lines readable, nothing worse).
func (s *Store) purgeLogs(ctx context.Context, id string) {
	if s.js == nil {
		return
	}
	if ls, err := s.js.Stream(ctx, broker.StreamLogs); err == nil {
		_ = ls.Purge(ctx, jetstream.WithPurgeSubject(jobwire.LogFilter(id)))
	}
}

// Filter selects jobs for List. Zero fields select everything.
type Filter struct {
	// Namespace keeps jobs of this namespace.
	Namespace string
	// Parent keeps the direct children of this job id.
	Parent string
	// Prefix keeps jobs whose id starts with it (a job and its descendants:
	// "/ns/train").
	Prefix string
	// Status keeps jobs in one of these states.
	Status []JobStatus
	// Live keeps only jobs not yet finished.
	Live bool
}

// Match reports whether r passes f.
func (f Filter) Match(r *Record) bool {
	if f.Namespace != "" && r.Namespace != f.Namespace {
		return false
	}
	if f.Parent != "" && r.Parent != f.Parent {
		return false
	}
	if f.Prefix != "" && r.ID != f.Prefix && !strings.HasPrefix(r.ID, strings.TrimSuffix(f.Prefix, "/")+"/") {
		return false
	}
	if f.Live && r.Status.Terminal() {
		return false
	}
	if len(f.Status) > 0 {
		ok := false
		for _, s := range f.Status {
			ok = ok || s == r.Status
		}
		if !ok {
			return false
		}
	}
	return true
}

// List returns the records that pass f, ordered by submission time then id.
func (s *Store) List(ctx context.Context, f Filter) ([]*Record, error) {
	filter := jobwire.KeyJobPrefix + ">"
	w, err := s.KV.WatchFiltered(ctx, []string{filter}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("jobs: list: %w", err)
	}
	defer w.Stop()
	var out []*Record
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("jobs: list: watcher closed")
			}
			if e == nil {
				sort.Slice(out, func(i, j int) bool {
					if out[i].SubmittedMS != out[j].SubmittedMS {
						return out[i].SubmittedMS < out[j].SubmittedMS
					}
					return out[i].ID < out[j].ID
				})
				return out, nil
			}
			r, err := DecodeRecord(e.Value())
			if err != nil {
				continue // a corrupt record is skipped, not fatal to a listing
			}
			if f.Match(r) {
				out = append(out, r)
			}
		}
	}
}
