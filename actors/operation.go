package actors

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// OpTTL is how long an operation's record is kept after its last update.
const OpTTL = 24 * time.Hour

// Operation states in OpRecord.State.
const (
	OpPending   = "pending"
	OpRunning   = "running"
	OpSucceeded = "succeeded"
	OpFailed    = "failed"
	OpCanceled  = "canceled"
)

// OpRecord is a long-running operation's record in FRAY_ACTORS under key
// "op.<namespace>.<name>.<id>", with a per-key TTL of OpTTL. Version 1.
type OpRecord struct {
	V         int                `cbor:"v" json:"v"`
	ID        string             `cbor:"id" json:"id"`
	Namespace string             `cbor:"ns" json:"namespace"`
	Actor     string             `cbor:"actor" json:"actor"`
	Method    string             `cbor:"method" json:"method"`
	State     string             `cbor:"state" json:"state"`
	Epoch     uint64             `cbor:"epoch,omitempty" json:"epoch,omitempty"`
	Host      string             `cbor:"host,omitempty" json:"host,omitempty"`
	Result    objects.RawMessage `cbor:"result,omitempty" json:"-"`
	Err       *wireError         `cbor:"e,omitempty" json:"error,omitempty"`
	CreatedMS int64              `cbor:"created_ms" json:"created_ms"`
	UpdatedMS int64              `cbor:"updated_ms" json:"updated_ms"`
}

// Done reports a final state.
func (r *OpRecord) Done() bool {
	return r.State == OpSucceeded || r.State == OpFailed || r.State == OpCanceled
}

func opKey(ns, name, id string) string { return "a_op." + ns + "." + name + "." + id }

// Operation is a long-running method call whose state lives in the
// registry bucket: any process (the caller after reconnecting, another
// process given ID) can poll, wait for or cancel it.
type Operation struct {
	c  *Client
	h  *Handle
	id string
}

// Submit starts method(arg) as a long-running operation and returns as soon
// as the actor has accepted it: queued behind what runs there, or running.
// It runs under the actor's MaxConcurrency like a call, in submission
// order on a serial actor; its result is recorded instead of replied. An
// operation whose Submit returns an error never runs.
func (h *Handle) Submit(ctx context.Context, method string, arg any) (*Operation, error) {
	c, err := h.client(ctx)
	if err != nil {
		return nil, err
	}
	if method == "" {
		return nil, fmt.Errorf("%w: empty method name (actor %s)", ErrNoSuchMethod, h)
	}
	now := time.Now().UnixMilli()
	op := &Operation{c: c, h: h, id: nuid.Next()}
	rec := OpRecord{V: 1, ID: op.id, Namespace: h.ns, Actor: h.name, Method: method, State: OpPending, CreatedMS: now, UpdatedMS: now}
	data, err := objects.Marshal(&rec)
	if err != nil {
		return nil, err
	}
	key := opKey(h.ns, h.name, op.id)
	rev, err := c.kv.Create(ctx, key, data, jetstream.KeyTTL(OpTTL))
	if err != nil {
		return nil, fmt.Errorf("actors: record operation: %w", err)
	}
	f := c.mux.call(ctx, c.mux.target(h.ns, h.name), method, arg, op.id)
	if err := f.Get(ctx, nil); err != nil {
		// Withdraw the operation: a host that got the call but whose
		// acceptance did not reach us starts it only if the record is
		// still there (instance.startOp). If the host started it first,
		// the removal fails and the operation stands: it was accepted.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		rerr := removeKey(rctx, c.js, key, rev, time.Minute)
		if rerr != nil && errors.Is(rerr, errRevMismatch) {
			if r, serr := op.Status(rctx); serr == nil && r.State != OpPending {
				return op, nil
			}
		}
		return nil, err
	}
	// Record which instance accepted it, unless it already started (then
	// the host wrote its epoch): a queued operation whose instance dies is
	// then reported instead of waited for forever.
	rec.Epoch = f.replyEpoch
	if data, err := objects.Marshal(&rec); err == nil {
		_, _ = casWrite(ctx, c.js, key, data, rev, OpTTL)
	}
	return op, nil
}

// Operation re-attaches to the operation id of this actor.
func (h *Handle) Operation(ctx context.Context, id string) (*Operation, error) {
	c, err := h.client(ctx)
	if err != nil {
		return nil, err
	}
	return &Operation{c: c, h: h, id: id}, nil
}

// ID identifies the operation across processes.
func (op *Operation) ID() string { return op.id }

// Status polls the operation's record.
func (op *Operation) Status(ctx context.Context) (*OpRecord, error) {
	e, err := op.c.kv.Get(ctx, opKey(op.h.ns, op.h.name, op.id))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, fmt.Errorf("%w: operation %s", ErrNotFound, op.id)
	}
	if err != nil {
		return nil, err
	}
	var r OpRecord
	if err := objects.Unmarshal(e.Value(), &r); err != nil {
		return nil, fmt.Errorf("actors: operation record: %w", err)
	}
	return &r, nil
}

// Wait polls until the operation ends and decodes its result into out. A
// method error is a *RemoteError; an operation whose instance died is
// ErrActorUnavailable; a canceled one is context.Canceled.
func (op *Operation) Wait(ctx context.Context, out any) error {
	wait := 5 * time.Millisecond
	for {
		r, err := op.Status(ctx)
		if err != nil {
			return err
		}
		switch r.State {
		case OpSucceeded:
			if out != nil && len(r.Result) > 0 {
				return objects.Unmarshal(r.Result, out)
			}
			return nil
		case OpFailed:
			return r.Err.remote(r.Method, r.Err.Host)
		case OpCanceled:
			return fmt.Errorf("actors: operation %s: %w", op.id, context.Canceled)
		case OpRunning, OpPending:
			if r.Epoch == 0 {
				break // not accepted yet
			}
			rec, _, err := getRecord(ctx, op.c.kv, recordKey(op.h.ns, op.h.name))
			if (err == nil && (rec.Epoch != r.Epoch || terminal(rec.State))) || errors.Is(err, ErrNotFound) {
				// Re-read: it may have finished just before the instance went.
				if r2, err := op.Status(ctx); err == nil && r2.Done() {
					continue
				}
				return fmt.Errorf("%w: operation %s was %s on instance epoch %d, which is gone", ErrActorUnavailable, op.id, r.State, r.Epoch)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// Cancel asks the actor to cancel the operation: a queued one never starts,
// a running one's context is cancelled.
func (op *Operation) Cancel(ctx context.Context) error {
	data, err := objects.Marshal(ctlMsg{V: 1, Op: "cancel", OpID: op.id})
	if err != nil {
		return err
	}
	if _, err := op.c.nc.RequestWithContext(ctx, ctlSubject(op.h.ns, op.h.name), data); err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("%w: %s", ErrActorUnavailable, op.h)
		}
		return fmt.Errorf("actors: cancel %s: %w", op.id, err)
	}
	return nil
}

// acceptOp accepts a long-running operation on the host: it replies at
// once (so Submit returns while the operation waits for its turn) and
// queues the operation under the actor's concurrency limit, behind the
// operations accepted before it on a serial instance.
func (in *instance) acceptOp(replyTo string, cm *callMsg) {
	if !in.hasMethod(cm.Method) {
		_, werr, _ := in.invoke(in.callCtx, cm)
		in.reply(replyTo, nil, werr)
		return
	}
	in.reply(replyTo, nil, nil)
	if in.sem != nil {
		go func() {
			select {
			case in.sem <- struct{}{}:
			case <-in.ctx.Done():
				return // queued on an instance that stopped: Wait reports it
			}
			defer func() { <-in.sem }()
			in.runOp(cm)
		}()
		return
	}
	prev, done := in.opTail, make(chan struct{})
	in.opTail = done
	go func() {
		defer close(done)
		if prev != nil {
			select {
			case <-prev:
			case <-in.ctx.Done():
				return
			}
		}
		if in.ctx.Err() == nil {
			in.runOp(cm)
		}
	}()
}

// runOp runs an accepted operation on the host: record running, invoke,
// record the outcome. An operation whose record is gone (its submitter
// gave up and removed it) or already ended never runs.
func (in *instance) runOp(cm *callMsg) {
	key := opKey(in.rec.Namespace, in.rec.Name, cm.Op)
	write := func(state string, res objects.RawMessage, werr *wireError) {
		now := time.Now().UnixMilli()
		r := OpRecord{V: 1, ID: cm.Op, Namespace: in.rec.Namespace, Actor: in.rec.Name, Method: cm.Method,
			CreatedMS: now}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if e, err := in.env.kv.Get(ctx, key); err == nil {
			_ = objects.Unmarshal(e.Value(), &r)
		}
		r.State, r.Epoch, r.Host, r.Result, r.Err, r.UpdatedMS = state, in.epoch, in.hostID, res, werr, now
		if data, err := objects.Marshal(&r); err == nil {
			if err := putTTL(ctx, in.env.js, key, data, OpTTL); err != nil {
				in.env.log.Warn("operation record write failed", "op", key, "err", err)
			}
		}
	}
	// Register the cancel func before looking for a cancellation: the
	// control handler marks canceled, then looks for the func, so one of
	// the two always sees the other and no cancellation is lost.
	ctx, cancel := context.WithCancel(in.ctx)
	defer cancel()
	in.ops.Store(cm.Op, cancel)
	defer in.ops.Delete(cm.Op)
	if _, canceled := in.canceled.LoadAndDelete(cm.Op); canceled {
		write(OpCanceled, nil, nil)
		return
	}
	if !in.startOp(key, cm.Op) {
		return
	}
	res, werr, stopNow := in.invoke(reflect.ValueOf(ctx), cm)
	in.canceled.Delete(cm.Op)
	if werr == lostCall {
		cancel()
		return // the operation's instance is gone: Wait reports it
	}
	in.calls.Add(1)
	switch {
	case ctx.Err() != nil && in.ctx.Err() == nil && werr != nil:
		write(OpCanceled, nil, werr)
	case werr != nil:
		if werr.Host == "" {
			werr.Host = in.hostID
		}
		write(OpFailed, nil, werr)
	default:
		write(OpSucceeded, res, nil)
	}
	in.afterCall(stopNow)
}

// startOp moves the operation's record from pending to running with a
// compare-and-set, so that it starts only if its submitter still stands
// by it: a submitter that gave up removed the record (compare-and-set too),
// and then the operation never runs. It reports whether to run it.
func (in *instance) startOp(key, id string) bool {
	ctx, cancel := context.WithTimeout(in.ctx, 10*time.Second)
	defer cancel()
	for {
		e, err := in.env.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			in.env.log.Info("operation not started: its submitter removed it", "op", id)
			return false
		}
		if err != nil {
			in.env.log.Warn("operation not started: its record cannot be read", "op", id, "err", err)
			return false
		}
		var r OpRecord
		if err := objects.Unmarshal(e.Value(), &r); err != nil || r.State != OpPending {
			return false
		}
		r.State, r.Epoch, r.Host, r.UpdatedMS = OpRunning, in.epoch, in.hostID, time.Now().UnixMilli()
		data, err := objects.Marshal(&r)
		if err != nil {
			return false
		}
		_, err = casWrite(ctx, in.env.js, key, data, e.Revision(), OpTTL)
		if err == nil {
			return true
		}
		if !errors.Is(err, errRevMismatch) {
			in.env.log.Warn("operation not started: its record cannot be written", "op", id, "err", err)
			return false
		}
		// The submitter wrote meanwhile (its epoch, or the removal): read again.
	}
}
