package jobs

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go/jetstream"
)

// Handle refers to one job by id. It is cheap; make as many as needed.
type Handle struct {
	c       *Client
	id      string
	adopted bool

	mu        sync.Mutex
	refreshed bool // the backends were asked about the job (see refresh)
}

// ID is the job's hierarchical id, "/<namespace>/<name>[/<child>...]".
func (h *Handle) ID() string { return h.id }

// Adopted reports whether Submit attached to a live job of the same name
// instead of starting one: that job runs its own request, not the one
// just submitted.
func (h *Handle) Adopted() bool { return h.adopted }

// Info returns the job's record.
func (h *Handle) Info(ctx context.Context) (*Record, error) {
	if err := h.refresh(ctx); err != nil {
		return nil, err
	}
	r, _, err := h.c.store.Get(ctx, h.id)
	return r, err
}

// Summary answers the common questions about a job in one read: its
// state, how often it was rerun and why, and why it ended or waits.
// Handle.Info has the whole record.
type Summary struct {
	ID     string
	Status JobStatus
	// Attempt counts gang (re)starts: 0 for the first run.
	Attempt int
	// Failures and Preemptions are the reruns after a failure and after a
	// lost or drained worker so far (see MaxRetriesFailure and
	// MaxRetriesPreemption).
	Failures    int
	Preemptions int
	// Why says why a finished job FAILED or was STOPPED (the record's
	// Error), or why a PENDING one waits (its PendingReason); empty for a
	// running or succeeded job.
	Why string
	// Running is the number of replicas running now, of Replicas.
	Running, Replicas int
}

// Terminal reports whether the job has ended.
func (s Summary) Terminal() bool { return s.Status.Terminal() }

// Summarize is r's Summary.
func Summarize(r *Record) Summary {
	s := Summary{ID: r.ID, Status: r.Status, Attempt: r.Attempt, Failures: r.Failures, Preemptions: r.Preemptions,
		Running: r.Running(), Replicas: len(r.Tasks)}
	switch {
	case r.Status.Terminal():
		s.Why = r.Error
	case r.Status == StatusPending:
		s.Why = r.PendingReason
	}
	return s
}

// Status returns the job's state, reruns and why it ended or waits.
func (h *Handle) Status(ctx context.Context) (Summary, error) {
	r, err := h.Info(ctx)
	if err != nil {
		return Summary{}, err
	}
	return Summarize(r), nil
}

// WaitOptions tunes Wait.
type WaitOptions struct {
	// RaiseOnFailure makes Wait return a *FailedError when the job ends
	// FAILED or STOPPED. Defaults to false: the record says how it ended.
	RaiseOnFailure bool
	// Progress, when set, is called with every new version of the record.
	Progress func(*Record)
}

// Wait blocks until the job finishes or ctx ends, and returns its final
// record. opts is optional: h.Wait(ctx) takes the defaults.
func (h *Handle) Wait(ctx context.Context, opt ...WaitOptions) (*Record, error) {
	var opts WaitOptions
	if len(opt) > 0 {
		opts = opt[0]
	}
	var final *Record
	err := h.watch(ctx, func(r *Record) bool {
		if opts.Progress != nil {
			opts.Progress(r)
		}
		if r.Status.Terminal() {
			final = r
			return true
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	if opts.RaiseOnFailure && final.Status != StatusSucceeded {
		return final, &FailedError{ID: h.id, Status: final.Status, Message: final.Error}
	}
	return final, nil
}

// watch calls fn with each version of the record until fn returns true.
// Besides the KV watch it re-reads the record every 2 s, because a watch
// stalls for several heartbeats after a broker restart.
func (h *Handle) watch(ctx context.Context, fn func(*Record) bool) error {
	if err := h.refresh(ctx); err != nil {
		return err
	}
	w, err := h.c.store.KV.Watch(ctx, jobwire.JobKey(h.id))
	if err != nil {
		return fmt.Errorf("jobs: watch %s: %w", h.id, err)
	}
	defer w.Stop()
	seen := false
	var last uint64
	handle := func(rev uint64, value []byte) bool {
		if rev <= last {
			return false
		}
		last = rev
		var r Record
		if objects.Unmarshal(value, &r) != nil {
			return false
		}
		seen = true
		return fn(&r)
	}
	resync := time.NewTicker(2 * time.Second)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-resync.C:
			gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			e, err := h.c.store.KV.Get(gctx, jobwire.JobKey(h.id))
			cancel()
			if err == nil && handle(e.Revision(), e.Value()) {
				return nil
			}
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("jobs: watch %s: closed", h.id)
			}
			if e == nil {
				if !seen {
					return fmt.Errorf("%w: %s", ErrNotFound, h.id)
				}
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				continue
			}
			if handle(e.Revision(), e.Value()) {
				return nil
			}
		}
	}
}

// Logs returns the last maxLines lines of the job's output (all when
// maxLines <= 0).
func (h *Handle) Logs(ctx context.Context, maxLines int) ([]LogLine, error) {
	if err := h.refresh(ctx); err != nil {
		return nil, err
	}
	return TailLogs(ctx, h.c.js, h.id, maxLines)
}

// Follow streams the job's output from the start, in order, until the job
// has finished and every line it wrote was delivered (including what the
// processes a stop ended print while shutting down, for up to 30 s after
// the job ended),
// or ctx ends:
//
//	for line, err := range h.Follow(ctx) { ... }
func (h *Handle) Follow(ctx context.Context) iter.Seq2[LogLine, error] {
	return func(yield func(LogLine, error) bool) {
		if err := h.follow(ctx, yield); err != nil {
			yield(LogLine{}, err)
		}
	}
}

func (h *Handle) follow(ctx context.Context, yield func(LogLine, error) bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	oc, err := h.c.js.OrderedConsumer(ctx, broker.StreamLogs, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{jobwire.LogFilter(h.id)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("jobs: follow %s: %w", h.id, err)
	}
	it, err := oc.Messages()
	if err != nil {
		return fmt.Errorf("jobs: follow %s: %w", h.id, err)
	}
	defer it.Stop()
	// done closes when the job is finished.
	done := make(chan struct{})
	werr := make(chan error, 1)
	go func() {
		err := h.watch(ctx, func(r *Record) bool { return r.Status.Terminal() })
		if err == nil {
			h.awaitExits(ctx) // lines keep streaming meanwhile
		}
		werr <- err
		close(done)
	}()
	waitCtx, stopWait := context.WithCancel(ctx)
	go func() {
		select {
		case <-done:
		case <-ctx.Done():
		}
		stopWait()
	}()
	var delivered, target uint64
	finished := false
	for {
		if finished && delivered >= target {
			return nil
		}
		nctx := waitCtx
		if finished {
			nctx = ctx
		}
		msg, err := it.Next(jetstream.NextContext(nctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !finished && waitCtx.Err() != nil {
				if e := <-werr; e != nil {
					return e
				}
				finished = true
				if target, err = lastLogSeq(ctx, h.c.js, h.id); err != nil {
					return fmt.Errorf("jobs: follow %s: %w", h.id, err)
				}
				continue
			}
			return fmt.Errorf("jobs: follow %s: %w", h.id, err)
		}
		if md, err := msg.Metadata(); err == nil {
			delivered = md.Sequence.Stream
		}
		lines, derr := decodeBatch(msg.Data())
		if derr != nil {
			continue
		}
		for _, l := range lines {
			if !yield(l, nil) {
				return nil
			}
		}
	}
}

// Terminate asks the dispatcher to stop the job (and its children) and
// waits until it is finished. Terminating a finished job is a no-op.
func (h *Handle) Terminate(ctx context.Context) error {
	return h.c.stop(ctx, h.id, "terminated by user")
}

// WaitAll waits for every job to succeed. It fails fast: the first job that
// ends FAILED or STOPPED returns its *FailedError at once (the others keep
// running). On success it returns the final records in the order of
// handles. An optional WaitOptions' Progress sees every job's updates (from
// several goroutines at once);
// RaiseOnFailure is implied.
func WaitAll(ctx context.Context, handles []*Handle, opts ...WaitOptions) ([]*Record, error) {
	var o WaitOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	o.RaiseOnFailure = true
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type res struct {
		i   int
		r   *Record
		err error
	}
	ch := make(chan res, len(handles))
	for i, h := range handles {
		go func() {
			r, err := h.Wait(ctx, o)
			ch <- res{i, r, err}
		}()
	}
	out := make([]*Record, len(handles))
	for range handles {
		x := <-ch
		if x.err != nil {
			return nil, x.err
		}
		out[x.i] = x.r
	}
	return out, nil
}

// followExitWait bounds how long after a job ended Follow waits for the
// processes that ending it stopped (SIGTERM, then SIGKILL after the
// worker's --job-grace) to exit, so that what they print while shutting
// down is followed too.
const followExitWait = 30 * time.Second

// followExternalSlack is added to followExitWait for a job on an external
// backend: its dispatcher mirrors logs for up to 30 s after the job ended
// (dispatcher.DefaultStopWait), then fetches them a last time before it
// marks the attempts exited.
const followExternalSlack = 15 * time.Second

// awaitExits waits until every task of the ended job's last attempt that
// had started has exited (its attempt is Exited), its worker is gone, or
// followExitWait has passed since the job ended: following a job that
// ended long ago never waits. On an external backend (Ray, Iris) an
// attempt is Exited once the dispatcher has mirrored the job's last log
// lines; there is no worker to be gone, and the bound is
// followExitWait + followExternalSlack.
func (h *Handle) awaitExits(ctx context.Context) {
	finished := time.Now()
	external := false
	if r, err := h.Info(ctx); err == nil {
		if r.FinishedMS > 0 {
			finished = time.UnixMilli(r.FinishedMS)
		}
		external = r.Backend != "native"
	}
	deadline := finished.Add(followExitWait)
	if external {
		deadline = deadline.Add(followExternalSlack)
	}
	var workers jetstream.KeyValue
	gone := map[string]bool{}
	for {
		r, err := h.Info(ctx)
		if err != nil {
			return
		}
		native := r.Backend == "native"
		waiting := false
		for i := range r.Tasks {
			a := r.Tasks[i].Current()
			if a == nil || a.Attempt != r.Attempt || a.Exited || a.StartMS == 0 || gone[a.Worker] {
				continue
			}
			if !native {
				waiting = true // the dispatcher's mirror marks it exited
				continue
			}
			if workers == nil {
				if workers, err = h.c.js.KeyValue(ctx, broker.BucketWorkers); err != nil {
					return
				}
			}
			if workerGone(ctx, workers, a) {
				gone[a.Worker] = true
				continue
			}
			waiting = true
		}
		if !waiting || time.Now().After(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond): // poll the record
		}
	}
}

// workerGone reports whether the worker of attempt a is no longer registered,
// or registered anew since a started (its processes died with it).
func workerGone(ctx context.Context, workers jetstream.KeyValue, a *TaskAttempt) bool {
	e, err := workers.Get(ctx, a.Worker)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return true
	}
	if err != nil {
		return false
	}
	var info broker.WorkerInfo
	if objects.Unmarshal(e.Value(), &info) != nil {
		return false
	}
	return info.StartedMS > a.StartMS
}
