package actors

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// instance is one epoch of one actor served by this process: it holds the
// registry lease, subscribes to the call and control subjects and invokes
// methods.
type instance struct {
	env    *env
	client *Client // for calls the actor makes; in its methods' context
	hostID string
	ttl    time.Duration
	ms     *methodSet
	val    reflect.Value
	dyn    *dynamic // set instead of ms and val for a dynamic class
	key    string
	epoch  uint64

	ctx     context.Context // cancelled when the instance stops
	cancel  context.CancelFunc
	callCtx reflect.Value // ctx with self and client, for method calls

	wmu     sync.Mutex // guards rec, rev and written: every record write
	rec     Record
	rev     uint64
	written time.Time // when this instance last wrote its record
	// unsaved: the standing record of this epoch is not written yet (its
	// write after ready failed); keep retries it after each renewal.
	unsaved bool

	calls   atomic.Uint64
	failErr atomic.Pointer[error]
	subMu   sync.Mutex // guards sub and ctlSub against a concurrent stop
	sub     *nats.Subscription
	ctlSub  *nats.Subscription
	sem     chan struct{}
	// running holds the reply subjects of the calls taken off the call
	// subscription and not yet answered, when MaxConcurrency > 1 (a serial
	// instance answers each call before taking the next). See barrier.
	runMu    sync.Mutex
	running  map[string]struct{}
	ops      sync.Map // op id -> context.CancelFunc
	canceled sync.Map // op id -> struct{}: cancel arrived before start
	// opTail is closed when the last operation queued on a serial instance
	// has ended: the next operation, and the next call, wait for it. Only
	// the call subscription's goroutine touches it.
	opTail chan struct{}

	stopOnce sync.Once
	stopped  chan struct{}
	onStop   func(*instance)
}

// stop modes.
const (
	stopClean     = iota // ErrStop or Shutdown: write a stopped tombstone
	stopFailed           // Fail or host stopping: failed (or dead) for the supervisor
	stopLeaseGone        // someone else owns the record now: write nothing
)

func newInstance(e *env, client *Client, hostID string, ttl time.Duration, rec *Record, rev uint64) *instance {
	in := &instance{env: e, client: client, hostID: hostID, ttl: ttl, key: rec.Key(), epoch: rec.Epoch,
		rec: *rec, rev: rev, stopped: make(chan struct{})}
	in.rec.LeaseMS = ttl.Milliseconds()
	ctx := context.WithValue(context.Background(), selfKey{}, in)
	if client != nil {
		ctx = ContextWithClient(ctx, client)
	}
	in.ctx, in.cancel = context.WithCancel(ctx)
	in.callCtx = reflect.ValueOf(in.ctx)
	return in
}

// start takes the lease over from the placer, constructs the instance,
// subscribes and marks the record ready. On error nothing is left running
// and the claim is deleted.
func (in *instance) start(construct func(context.Context) (any, *methodSet, error)) error {
	ctx, cancel := context.WithTimeout(in.ctx, 10*time.Second)
	defer cancel()
	in.wmu.Lock()
	in.rec.State, in.rec.Host, in.rec.Error = StatePlacing, in.hostID, ""
	err := in.writeLocked(ctx, in.ttl)
	in.wmu.Unlock()
	if err != nil {
		in.cancel()
		return fmt.Errorf("take over the claim: %w", err)
	}
	// Listen for control messages before constructing: a stop that comes
	// while the constructor runs cancels it, and no call is ever served.
	in.subMu.Lock()
	in.ctlSub, err = in.env.nc.Subscribe(ctlSubject(in.rec.Namespace, in.rec.Name), in.onCtl)
	in.subMu.Unlock()
	if err != nil {
		in.cancel()
		return fmt.Errorf("subscribe to control: %w", err)
	}
	go in.keep()
	v, ms, err := construct(in.ctx)
	if d, ok := v.(DynamicInstance); ok && err == nil && ms == nil {
		in.dyn = newDynamic(d)
		go in.watchDynamic()
	}
	if err != nil {
		in.stop(stopLeaseGone, "")
		in.wmu.Lock()
		_ = in.env.kv.Delete(context.Background(), in.key, jetstream.LastRevision(in.rev))
		in.wmu.Unlock()
		return err
	}
	if in.ctx.Err() != nil {
		in.stop(stopLeaseGone, "")
		return fmt.Errorf("lease lost (or stopped) while constructing")
	}
	if in.dyn == nil {
		in.ms, in.val = ms, reflect.ValueOf(v)
	}
	if in.rec.MaxConcurrency > 1 {
		in.sem = make(chan struct{}, in.rec.MaxConcurrency)
		in.running = map[string]struct{}{}
	}
	in.subMu.Lock()
	if in.ctx.Err() != nil {
		err = fmt.Errorf("lease lost while starting")
	} else {
		// A queue group, so that a stale epoch (a host back from a partition
		// before its next renewal finds the lease lost) never runs a call a
		// second time beside the current one.
		in.sub, err = in.env.nc.QueueSubscribe(callSubject(in.rec.Namespace, in.rec.Name), "fray-actor", in.onCall)
	}
	if err == nil {
		_ = in.sub.SetPendingLimits(-1, -1)
	}
	in.subMu.Unlock()
	if err == nil {
		err = in.env.nc.FlushWithContext(ctx)
	}
	if err == nil {
		in.wmu.Lock()
		in.rec.State, in.rec.StartedMS = StateReady, time.Now().UnixMilli()
		err = in.writeLocked(ctx, in.ttl)
		if err == nil {
			// The standing record lets a supervisor restart this epoch if
			// its lease key vanishes unseen (host lost while the broker is
			// down). A failure here is retried at each renewal.
			in.saveStandingLocked(ctx)
		}
		in.wmu.Unlock()
	}
	if err != nil {
		in.stop(stopLeaseGone, "")
		in.wmu.Lock()
		_ = in.env.kv.Delete(context.Background(), in.key, jetstream.LastRevision(in.rev))
		in.wmu.Unlock()
		return fmt.Errorf("start serving: %w", err)
	}
	return nil
}

// saveStandingLocked writes this epoch's record as the actor's standing
// record, noting a failure for keep to retry.
func (in *instance) saveStandingLocked(ctx context.Context) {
	err := in.env.saveStanding(ctx, in.rec)
	in.unsaved = err != nil
	if err != nil {
		in.env.log.Warn("actor standing record write failed; retrying at the next renewal", "actor", in.key, "err", err)
	}
}

// writeLocked writes the record (with the calls counter) over the lease.
func (in *instance) writeLocked(ctx context.Context, ttl time.Duration) error {
	in.rec.Calls = in.calls.Load()
	data, err := objects.Marshal(&in.rec)
	if err != nil {
		return err
	}
	rev, err := casWrite(ctx, in.env.js, in.key, data, in.rev, ttl)
	if err != nil {
		return err
	}
	in.rev, in.written = rev, time.Now()
	return nil
}

// reclaimWithin bounds how long after its last write an instance may take
// back a lease that expired under it (recoverLeaseLocked): well within
// TombstoneTTL, so a stop tombstone written after that last write cannot
// have expired yet and be mistaken for an expired lease.
const reclaimWithin = TombstoneTTL - 10*time.Second

// recoverLeaseLocked runs when a renewal's sequence check failed. That
// need not mean someone else wrote the key:
//   - the last write went through but its acknowledgement was lost (the
//     broker stopped, or answered after the renewal's timeout): the key's
//     last message is this instance's own record;
//   - the lease expired while no one could renew it (the broker was down
//     or unreachable for longer than the TTL, and on restart it dropped
//     the expired key before any supervisor watched): the key holds
//     nothing, or only the marker the server leaves when a TTL runs out.
//
// In both cases the instance is still the actor's only one, and it writes
// its record again over what it found. Anything else (a stop tombstone, a
// supervisor's or creator's claim, a creator's delete) is someone else's
// write: errRevMismatch, the lease is gone. An expired key is taken back
// only within reclaimWithin of the instance's last write, so that an
// expired stop tombstone is never mistaken for an expired lease. Every
// write is sequence-checked against what was found, so of this instance
// and a supervisor or creator racing for a free key exactly one wins.
func (in *instance) recoverLeaseLocked(ctx context.Context) (found string, err error) {
	st, err := in.env.js.Stream(ctx, "KV_"+broker.BucketActors)
	if err != nil {
		return "", err
	}
	var expect uint64
	last, err := st.GetLastMsgForSubject(ctx, "$KV."+broker.BucketActors+"."+in.key)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && last.Header.Get(jetstream.MarkerReasonHeader) == "MaxAge"):
		if in.written.IsZero() || time.Since(in.written) >= reclaimWithin {
			return "", errRevMismatch
		}
		found = "expired"
		if err == nil {
			expect = last.Sequence
		}
	case err != nil:
		return "", err
	default:
		var r Record
		if last.Header.Get(jetstream.MarkerReasonHeader) != "" || last.Header.Get("KV-Operation") != "" ||
			objects.Unmarshal(last.Data, &r) != nil ||
			r.Host != in.hostID || r.Epoch != in.epoch || r.State != in.rec.State {
			return "", errRevMismatch // someone else's write
		}
		found, expect = "own unacknowledged write", last.Sequence
	}
	prev := in.rev
	in.rev = expect
	if err := in.writeLocked(ctx, in.ttl); err != nil {
		in.rev = prev
		return "", err
	}
	return found, nil
}

// keep renews the lease every TTL/3 until the instance stops. A renewal
// that failed without a verdict (no stream leader during an election, a
// reconnect) is retried every broker.RetryEvery(TTL), so the lease is
// renewed, or taken back if it expired meanwhile, as soon as the stream
// answers again. A renewal may take until the lease runs out (at least
// TTL/3): its write shares the host's connection with the calls, so a
// burst of calls queued ahead of it delays its acknowledgement, and a
// renewal given up early while its write still lands only costs another
// round of writes.
func (in *instance) keep() {
	t := time.NewTimer(in.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-in.ctx.Done():
			return
		case <-t.C:
		}
		in.wmu.Lock()
		ctx, cancel := context.WithTimeout(in.ctx, max(in.ttl/3, time.Until(in.written.Add(in.ttl))))
		err := in.writeLocked(ctx, in.ttl)
		if errors.Is(err, errRevMismatch) {
			if found, rerr := in.recoverLeaseLocked(ctx); rerr == nil {
				in.env.log.Warn("actor lease renewal found its key "+found+"; lease taken back", "actor", in.key, "epoch", in.epoch)
				err = nil
			} else if !errors.Is(rerr, errRevMismatch) {
				err = rerr // can't tell yet: look again at the next renewal
			}
		}
		if err == nil && in.unsaved {
			in.saveStandingLocked(ctx)
		}
		in.wmu.Unlock()
		cancel()
		if errors.Is(err, errRevMismatch) {
			in.env.log.Info("actor lease lost; stopping instance", "actor", in.key, "epoch", in.epoch)
			go in.stop(stopLeaseGone, "")
			return
		}
		if err != nil && in.ctx.Err() == nil {
			in.env.log.Warn("actor lease renewal failed; retrying", "actor", in.key, "err", err)
			t.Reset(broker.RetryEvery(in.ttl))
			continue
		}
		t.Reset(in.ttl / 3)
	}
}

// stop ends the instance once: unsubscribes, cancels running methods and
// writes the final record for mode.
func (in *instance) stop(mode int, reason string) {
	in.stopOnce.Do(func() {
		in.subMu.Lock()
		in.cancel()
		if in.sub != nil {
			_ = in.sub.Unsubscribe()
		}
		if in.ctlSub != nil {
			_ = in.ctlSub.Unsubscribe()
		}
		in.subMu.Unlock()
		if in.dyn != nil {
			in.dyn.d.Close()
		}
		if mode != stopLeaseGone {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			in.wmu.Lock()
			switch mode {
			case stopClean:
				in.rec.State = StateStopped
			case stopFailed:
				in.rec.State = StateFailed
				if in.rec.Pinned || (in.rec.MaxRestarts >= 0 && in.rec.Restarts >= in.rec.MaxRestarts) {
					in.rec.State = StateDead // no restart left: say so now
				}
			}
			in.rec.Error = reason
			err := in.writeLocked(ctx, TombstoneTTL)
			if err != nil && !errors.Is(err, errRevMismatch) {
				in.env.log.Warn("actor final record write failed", "actor", in.key, "err", err)
			}
			if err == nil && terminal(in.rec.State) {
				if err := in.env.dropStanding(ctx, &in.rec); err != nil {
					in.env.log.Warn("actor standing record removal failed", "actor", in.key, "err", err)
				}
			}
			in.wmu.Unlock()
			cancel()
		}
		if in.onStop != nil {
			in.onStop(in)
		}
		close(in.stopped)
	})
}

func (in *instance) onCtl(msg *nats.Msg) {
	var m ctlMsg
	if err := objects.Unmarshal(msg.Data, &m); err != nil {
		return
	}
	switch m.Op {
	case "stop":
		if m.Epoch != 0 && m.Epoch < in.epoch {
			return // about an older instance: not this one
		}
		if m.Epoch > in.epoch {
			// A newer epoch exists, so this instance lost its lease and
			// must not take calls: stop, but leave the reply to the
			// instance the stop is for.
			in.stop(stopLeaseGone, "")
			return
		}
		// The record is already a tombstone. Stop before replying: the
		// reply tells the stopper this instance no longer takes calls (its
		// call subscription is gone, the unsubscribe sent before the reply).
		in.stop(stopLeaseGone, "")
	case "cancel":
		in.canceled.Store(m.OpID, struct{}{})
		if c, ok := in.ops.Load(m.OpID); ok {
			c.(context.CancelFunc)()
		}
	}
	if msg.Reply != "" {
		_ = in.env.nc.Publish(msg.Reply, nil)
	}
}

func (in *instance) onCall(msg *nats.Msg) {
	if msg.Header != nil && msg.Header.Get(hdrBarrier) != "" {
		in.barrier(msg)
		return
	}
	var cm callMsg
	if err := objects.Unmarshal(msg.Data, &cm); err != nil {
		in.reply(msg.Reply, nil, &wireError{Type: TypeBadArgument, Message: "malformed call record: " + err.Error()})
		return
	}
	if cm.Op != "" {
		in.acceptOp(msg.Reply, &cm) // never waits: accepted now, queued
		return
	}
	if in.sem == nil {
		// MaxConcurrency 1: inline, in arrival order, after the operations
		// accepted before it.
		if t := in.opTail; t != nil {
			select {
			case <-t:
			case <-in.ctx.Done():
				return
			}
		}
		in.handle(msg.Reply, &cm)
		return
	}
	select {
	case in.sem <- struct{}{}:
	case <-in.ctx.Done():
		return
	}
	in.runMu.Lock()
	in.running[msg.Reply] = struct{}{}
	in.runMu.Unlock()
	go func() {
		defer func() { <-in.sem }()
		in.handle(msg.Reply, &cm) // replies before leaving running
		in.runMu.Lock()
		delete(in.running, msg.Reply)
		in.runMu.Unlock()
	}()
}

// barrier answers a client that lost its connection with calls pending:
// which of the calls it names (by reply subject) are still running here.
// The barrier came through the call subscription behind every call the
// client sent before it, and each of those is by now either running or
// answered (a serial instance answered them all), with its reply
// published before this one. So a named call that is neither running nor
// answered by the time the client reads this reply is lost.
func (in *instance) barrier(msg *nats.Msg) {
	var b barrierMsg
	if err := objects.Unmarshal(msg.Data, &b); err != nil || msg.Reply == "" {
		return
	}
	rep := barrierReply{V: 1, Epoch: in.epoch}
	if in.running != nil {
		in.runMu.Lock()
		for _, r := range b.Replies {
			if _, ok := in.running[r]; ok {
				rep.Running = append(rep.Running, r)
			}
		}
		in.runMu.Unlock()
	}
	data, err := objects.Marshal(rep)
	if err != nil {
		return
	}
	_ = in.env.nc.Publish(msg.Reply, data)
}

func (in *instance) handle(replyTo string, cm *callMsg) {
	res, werr, stopNow := in.invoke(in.callCtx, cm)
	if werr == lostCall {
		return // the instance failed; the caller learns it from the record
	}
	in.calls.Add(1)
	// Stop before replying, so the caller that made the actor stop or fail
	// observes the final record and its next call waits for a new instance.
	in.afterCall(stopNow)
	in.reply(replyTo, res, werr)
}

func (in *instance) afterCall(stopNow bool) {
	if p := in.failErr.Load(); p != nil {
		in.stop(stopFailed, "failed: "+(*p).Error())
	} else if stopNow {
		in.stop(stopClean, "stopped by its method returning ErrStop")
	}
}

func (in *instance) reply(to string, res objects.RawMessage, werr *wireError) {
	if to == "" {
		return
	}
	if werr != nil {
		werr.Host = in.hostID
	}
	data, err := objects.Marshal(replyMsg{V: 1, Epoch: in.epoch, Result: res, Err: werr})
	if err != nil {
		return
	}
	_ = in.env.nc.Publish(to, data)
}

// invoke runs one method. stopNow reports that it returned ErrStop.
func (in *instance) invoke(ctx reflect.Value, cm *callMsg) (res objects.RawMessage, werr *wireError, stopNow bool) {
	if in.dyn != nil {
		return in.invokeDynamic(ctx.Interface().(context.Context), cm)
	}
	md := in.ms.methods[cm.Method]
	if md == nil {
		return nil, &wireError{Type: TypeNoSuchMethod, Message: fmt.Sprintf("class %s has no method %q (methods: %s)",
			in.rec.Class, cm.Method, strings.Join(in.ms.names(), ", "))}, false
	}
	args := [3]reflect.Value{in.val, ctx}
	n := 2
	if md.in != nil {
		p := reflect.New(md.in)
		if len(cm.Arg) > 0 {
			if err := objects.Unmarshal(cm.Arg, p.Interface()); err != nil {
				return nil, &wireError{Type: TypeBadArgument, Message: fmt.Sprintf("argument of %s: want %s: %v", cm.Method, md.in, err)}, false
			}
		}
		args[2] = p.Elem()
		n = 3
	} else if len(cm.Arg) > 0 && !(len(cm.Arg) == 1 && cm.Arg[0] == 0xf6) {
		return nil, &wireError{Type: TypeBadArgument, Message: fmt.Sprintf("method %s takes no argument", cm.Method)}, false
	}
	defer func() {
		if r := recover(); r != nil {
			res, stopNow = nil, false
			werr = &wireError{Type: TypePanic, Lang: "go", Message: fmt.Sprintf("panic in %s.%s: %v\n%s", in.rec.Class, cm.Method, r, panicStack(maxPanicFrames))}
		}
	}()
	outs := md.fn.Call(args[:n])
	if e := outs[len(outs)-1]; !e.IsNil() {
		err := e.Interface().(error)
		if !errors.Is(err, ErrStop) {
			return nil, &wireError{Type: fmt.Sprintf("%T", err), Lang: "go", Message: err.Error()}, false
		}
		stopNow = true
	}
	if md.out != nil {
		b, err := objects.Marshal(outs[0].Interface())
		if err != nil {
			return nil, &wireError{Type: TypeBadArgument, Message: fmt.Sprintf("encode result of %s: %v", cm.Method, err)}, stopNow
		}
		res = b
	}
	return res, nil, stopNow
}

// maxPanicFrames bounds the stack a panic's RemoteError carries.
const maxPanicFrames = 8

// panicStack, called from a deferred recover, formats at most n frames
// of the panicking goroutine's stack from the frame that panicked up to
// the method invoked, without the recovery's own frames (runtime, this
// package's recover) or the reflect call machinery above the method.
func panicStack(n int) string {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	var b strings.Builder
	inPanic, kept := false, 0
	for {
		f, more := frames.Next()
		switch {
		case !inPanic:
			inPanic = f.Function == "runtime.gopanic" // the frames above it recover
		case strings.HasPrefix(f.Function, "reflect.") || kept == n:
			return strings.TrimSuffix(b.String(), "\n")
		case strings.HasPrefix(f.Function, "runtime."):
			// runtime frames between gopanic and the code (e.g. panicmem)
		default:
			fmt.Fprintf(&b, "%s\n\t%s:%d\n", f.Function, f.File, f.Line)
			kept++
		}
		if !more {
			return strings.TrimSuffix(b.String(), "\n")
		}
	}
}
