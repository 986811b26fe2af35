package tasks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/objects"
)

// Future is a task's eventual result. Its ID names it in any process
// connected to the same cluster while the result is retained.
type Future struct {
	p *Producer
	// fid is the future id, "<owner>.<task-id>" (its task message's
	// Nats-Msg-Id); owner and id are its parts.
	fid   string
	owner string
	id    string
	fn    string
	seq   uint64 // the task's number, if p submitted it (taskid.go)
	// foreign futures were not submitted by p: Done subscribes to the
	// result subject and looks the result up.
	foreign   bool
	submitted time.Time // when it became pending (guarded by p.mu); for a foreign future, when its watch began
	rechecked bool      // foreign: looked up again after the first lookup (guarded by p.mu)
	// nextCheck and checkEvery pace the producer's result lookups for
	// this future (guarded by p.mu).
	nextCheck  time.Time
	checkEvery time.Duration
	// older and newer link a pending future into its producer's
	// waiting list (guarded by p.mu).
	older, newer *Future

	// submittedHere is set for futures this producer submitted (not
	// obtained by id): only they wait for a PubAck.
	submittedHere bool

	// mu guards the rest. The channels are made only when someone has to
	// wait on them: most results arrive before their future is asked,
	// and most futures are never asked whether they are queued.
	mu       sync.Mutex
	resolved bool          // res and err are set, never to change
	done     chan struct{} // closed on resolve, if made before
	watching bool          // a foreign future's watch has started
	isQueued bool          // the submission's PubAck arrived
	queued   chan struct{} // closed then, if made before
	res      *Result
	err      error
	// result holds the record a result message resolved the future with
	// (res points to it): no record allocated per result.
	result Result
}

// closedChan is the Done channel of every future resolved before it was asked.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// newFuture is the future of a task p submits: fid is its future id, the
// owner its first ownerLen bytes.
func newFuture(p *Producer, fid string, ownerLen int, fn string) *Future {
	return &Future{p: p, fid: fid, owner: fid[:ownerLen], id: fid[ownerLen+1:], fn: fn, submittedHere: true}
}

// markQueued records the submission's PubAck.
func (f *Future) markQueued() {
	f.mu.Lock()
	f.isQueued = true
	if f.queued != nil {
		close(f.queued)
	}
	f.mu.Unlock()
}

// queuedState reports whether the PubAck arrived and, if not, the channel
// closed when it does.
func (f *Future) queuedState() (bool, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.isQueued {
		return true, nil
	}
	if f.queued == nil {
		f.queued = make(chan struct{})
	}
	return false, f.queued
}

// Queued waits until the task is stored in the queue (its submission was
// acknowledged), and returns the submission's error if it was refused (an
// unknown function, a full queue, ...). A future obtained by id returns nil
// at once: its task was queued by another producer.
func (f *Future) Queued(ctx context.Context) error {
	if !f.submittedHere {
		return nil
	}
	ok, queued := f.queuedState()
	if ok {
		return nil
	}
	select {
	case <-queued:
		return nil
	case <-f.doneChan():
		if ok, _ := f.queuedState(); ok {
			return nil
		}
		if f.res == nil && f.err != nil {
			return f.err
		}
		return nil // a result arrived before the acknowledgement
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ID is the future's public id, "<owner>.<task-id>".
func (f *Future) ID() string { return f.fid }

// TaskID is the task's id, the part of its future id after the owner.
func (f *Future) TaskID() string { return f.id }

// resolve sets the outcome; the first one stands.
func (f *Future) resolve(res *Result, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.resolved {
		return
	}
	f.res, f.err, f.resolved = res, err, true
	if f.done != nil {
		close(f.done)
	}
}

// resolveRecord resolves f with the result record data (or the error
// decoding it), unless f is resolved: the first outcome stands. Text
// values equal to like's are like's strings (taskwire.DecodeResultInto).
// It returns the record it resolved f with, if any.
func (f *Future) resolveRecord(data []byte, like *Result) *Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.resolved {
		return nil
	}
	if err := taskwire.DecodeResultInto(data, &f.result, like); err != nil {
		f.result = Result{}
		f.err = err
	} else {
		f.res = &f.result
	}
	f.resolved = true
	if f.done != nil {
		close(f.done)
	}
	return f.res
}

// isResolved reports whether the outcome is set.
func (f *Future) isResolved() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.resolved
}

// doneChan is Done without starting a foreign future's watch.
func (f *Future) doneChan() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.resolved {
		return closedChan
	}
	if f.done == nil {
		f.done = make(chan struct{})
	}
	return f.done
}

// Done is closed when the result (or a submission error) is known.
func (f *Future) Done() <-chan struct{} {
	if f.foreign && f.p != nil {
		f.mu.Lock()
		start := !f.watching
		f.watching = true
		f.mu.Unlock()
		if start {
			f.p.watchForeign(f)
		}
	}
	return f.doneChan()
}

// Result waits for the raw result record. A failed task returns its record
// and a *RemoteError.
func (f *Future) Result(ctx context.Context) (*Result, error) {
	select {
	case <-f.Done():
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for task %s: %w", f.ID(), ctx.Err())
	}
	if f.err != nil {
		return f.res, f.err
	}
	if f.res.Error != nil {
		return f.res, remoteError(f.id, f.res.Error)
	}
	return f.res, nil
}

// Get waits for the result and decodes its value into v (a pointer, or nil
// to discard the value).
func (f *Future) Get(ctx context.Context, v any) error {
	res, err := f.Result(ctx)
	if err != nil {
		return err
	}
	if v == nil {
		return nil
	}
	raw := res.Value
	if res.ValueRef != nil {
		if f.p == nil || f.p.store == nil {
			return fmt.Errorf("tasks: result of %s is in the object store, and this producer has none", f.ID())
		}
		if raw, err = f.p.store.GetBytes(ctx, *res.ValueRef); err != nil {
			return fmt.Errorf("tasks: result of %s: %w", f.ID(), err)
		}
	}
	if len(raw) == 0 {
		return nil
	}
	return objects.Unmarshal(raw, v)
}

// Cancel cancels the task: a queued task never starts, a running task's
// context is cancelled, and the future resolves with ErrCancelled. A task
// that already has a result keeps it.
func (f *Future) Cancel(ctx context.Context) error {
	if f.p == nil {
		return errors.New("tasks: future has no producer")
	}
	return f.p.cancel(ctx, f)
}

// Waitable is anything Wait can wait on.
type Waitable interface {
	Done() <-chan struct{}
}

// TypedFuture is a Future whose value decodes into R.
type TypedFuture[R any] struct{ *Future }

// Get waits for the result and returns its value.
func (t TypedFuture[R]) Get(ctx context.Context) (R, error) {
	var r R
	err := t.Future.Get(ctx, &r)
	return r, err
}

// ErrBadWait reports invalid Wait arguments.
var ErrBadWait = errors.New("tasks: bad wait")

// Wait has ray.wait's semantics: it returns as soon as n of futs are done,
// or when timeout passes, splitting futs into ready (at most n) and pending,
// both in input order. A timeout of 0 checks once without waiting; a
// negative timeout waits as long as ctx allows.
func Wait[F Waitable](ctx context.Context, futs []F, n int, timeout time.Duration) (ready, pending []F, err error) {
	if n < 1 || n > len(futs) {
		return nil, futs, fmt.Errorf("%w: n = %d with %d futures: want 1 <= n <= %d", ErrBadWait, n, len(futs), len(futs))
	}
	isDone := func(f F) bool {
		select {
		case <-f.Done():
			return true
		default:
			return false
		}
	}
	count := func() int {
		c := 0
		for _, f := range futs {
			if isDone(f) {
				c++
			}
		}
		return c
	}
	if timeout != 0 && count() < n {
		var timer <-chan time.Time
		if timeout > 0 {
			t := time.NewTimer(timeout)
			defer t.Stop()
			timer = t.C
		}
		notify := make(chan struct{}, len(futs))
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, f := range futs {
			if isDone(f) {
				continue
			}
			wg.Add(1)
			go func(done <-chan struct{}) {
				defer wg.Done()
				select {
				case <-done:
					notify <- struct{}{}
				case <-stop:
				}
			}(f.Done())
		}
		got := count()
	loop:
		for got < n {
			select {
			case <-notify:
				got++
			case <-timer:
				break loop
			case <-ctx.Done():
				err = ctx.Err()
				break loop
			}
		}
		close(stop)
		wg.Wait()
	}
	for _, f := range futs {
		if len(ready) < n && isDone(f) {
			ready = append(ready, f)
		} else {
			pending = append(pending, f)
		}
	}
	return ready, pending, err
}
