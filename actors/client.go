package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ClientOptions configures a Client. Every field has a default.
type ClientOptions struct {
	// Namespace is the default namespace of actors this client creates and
	// looks up. Defaults to the namespace of FRAY_JOB_ID ("/<ns>/<job>"),
	// or "default".
	Namespace string
	// CreatorJob is recorded in actors this client creates; a non-detached
	// actor is stopped when that job ends. Defaults to FRAY_JOB_ID.
	CreatorJob string
	// CallTimeout bounds a call whose context has no deadline. Defaults to
	// 60 s.
	CallTimeout time.Duration
	// PlacementTimeout is how long a create waits for an eligible worker to
	// exist. Defaults to 10 s.
	PlacementTimeout time.Duration
	// ConstructTimeout is how long a create waits for the host to construct
	// the instance. Defaults to 2 min.
	ConstructTimeout time.Duration
	// StaleAfter is how long a call may wait for its reply before the client
	// checks that the instance it went to is still alive. Defaults to 500 ms.
	StaleAfter time.Duration
	// HostLeaseTTL is the lease of actors this process hosts with
	// HostActor. Defaults to 10 s; at least 1 s.
	HostLeaseTTL time.Duration
	// Logger defaults to discarding.
	Logger *slog.Logger
}

func (o *ClientOptions) withDefaults() error {
	job := os.Getenv("FRAY_JOB_ID")
	if o.CreatorJob == "" {
		o.CreatorJob = job
	}
	if o.Namespace == "" {
		o.Namespace = "default"
		if parts := strings.Split(strings.TrimPrefix(job, "/"), "/"); len(parts) > 1 && parts[0] != "" {
			o.Namespace = parts[0]
		}
	}
	if err := checkName("namespace", o.Namespace); err != nil {
		return err
	}
	def := func(p *time.Duration, d time.Duration) {
		if *p <= 0 {
			*p = d
		}
	}
	def(&o.CallTimeout, 60*time.Second)
	def(&o.PlacementTimeout, 10*time.Second)
	def(&o.ConstructTimeout, 2*time.Minute)
	def(&o.StaleAfter, 500*time.Millisecond)
	def(&o.HostLeaseTTL, 10*time.Second)
	o.HostLeaseTTL = max(o.HostLeaseTTL, time.Second)
	return nil
}

// claimTTL is the lease on a freshly claimed name until a host takes it
// over, beyond the wait for an eligible worker (the placement timeout).
const claimTTL = 30 * time.Second

// TombstoneTTL is how long a stopped or dead actor's record stays readable
// (so callers learn why) before the name is free again.
const TombstoneTTL = time.Minute

// Client creates, finds and calls actors. It is safe for concurrent use.
// Build one per connection with NewClient; Close it when done.
type Client struct {
	*env
	opts ClientOptions
	mux  *mux
	// hostID names this process when it hosts actors itself (HostActor).
	hostOnce sync.Once
	hostID   string
	hostedMu sync.Mutex
	hosted   map[*instance]struct{}
}

// NewClient returns a client on nc/js. The broker must be provisioned.
func NewClient(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, opts ClientOptions) (*Client, error) {
	if err := opts.withDefaults(); err != nil {
		return nil, err
	}
	e, err := newEnv(ctx, nc, js, opts.Logger)
	if err != nil {
		return nil, err
	}
	c := &Client{env: e, opts: opts}
	if c.mux, err = newMux(c); err != nil {
		return nil, err
	}
	return c, nil
}

// Close stops the client's reply subscription; pending calls fail.
// Actors this client hosts (HostActor) are stopped first.
func (c *Client) Close() error {
	c.hostedMu.Lock()
	hosted := make([]*instance, 0, len(c.hosted))
	for in := range c.hosted {
		hosted = append(hosted, in)
	}
	c.hostedMu.Unlock()
	for _, in := range hosted {
		in.stop(stopClean, "hosting client closed")
	}
	return c.mux.close()
}

// Namespace is the client's default namespace.
func (c *Client) Namespace() string { return c.opts.Namespace }

// CreateActor creates the actor name of class className with constructor
// argument arg on an eligible worker and returns its handle once it serves.
// With GetIfExists a live actor of that name is returned instead of
// ErrExists (and racing creators all get the one instance). An existing
// actor of another class is an ErrClassMismatch error naming both.
func (c *Client) CreateActor(ctx context.Context, className, name string, arg any, opts ...CreateOption) (*Handle, error) {
	o, err := buildOpts(c.opts.Namespace, opts)
	if err != nil {
		return nil, err
	}
	if err := checkName("actor name", name); err != nil {
		return nil, err
	}
	raw, err := encodeArg(arg)
	if err != nil {
		return nil, err
	}
	return c.create(ctx, className, name, "", -1, raw, o)
}

func encodeArg(arg any) (objects.RawMessage, error) {
	if arg == nil {
		return nil, nil
	}
	return objects.Marshal(arg)
}

func (c *Client) newRecord(className, name, group string, index int, arg objects.RawMessage, o createOpts) *Record {
	return &Record{
		V: RecordVersion, Namespace: o.namespace, Name: name, Class: className,
		State: StatePlacing, Epoch: 1, Arg: arg, Pool: o.pool, NonPreemptible: o.nonPreemptible,
		MaxConcurrency: o.maxConcurrency, MaxRestarts: o.maxRestarts, MaxTaskRetries: o.maxTaskRetries,
		Detached: o.detached, CreatorJob: c.opts.CreatorJob, Group: group, Index: index,
		CreatedMS: time.Now().UnixMilli(),
	}
}

// create claims the name with a KV Create (atomic get-or-create) and places
// the actor, or joins the existing one.
func (c *Client) create(ctx context.Context, className, name, group string, index int, arg objects.RawMessage, o createOpts) (*Handle, error) {
	if className == "" {
		return nil, fmt.Errorf("%w: empty class name", ErrUnknownClass)
	}
	key := recordKey(o.namespace, name)
	ctx, unguard := broker.GuardPublish(ctx, c.nc, "$KV."+broker.BucketActors+".>")
	defer unguard()
	for {
		rec := c.newRecord(className, name, group, index, arg, o)
		data, err := objects.Marshal(rec)
		if err != nil {
			return nil, err
		}
		rev, err := c.kv.Create(ctx, key, data, jetstream.KeyTTL(c.opts.PlacementTimeout+claimTTL))
		if err == nil {
			if _, err := c.place(ctx, rec, rev, placement{timeout: c.opts.PlacementTimeout, construct: c.opts.ConstructTimeout, unknownClassFails: true}); err != nil {
				// Free the name unless a host already took it over (the
				// host deletes its own claim on a constructor error).
				_ = c.kv.Delete(context.WithoutCancel(ctx), key, jetstream.LastRevision(rev))
				return nil, fmt.Errorf("actors: create %s/%s: %w", o.namespace, name, err)
			}
			return c.handle(o.namespace, name, className, rec.Epoch), nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("actors: claim %s/%s: %w", o.namespace, name, broker.Denied(ctx, err))
		}
		cur, curRev, err := getRecord(ctx, c.kv, key)
		if errors.Is(err, ErrNotFound) {
			continue // expired between our Create and Get: try again
		}
		if err != nil {
			return nil, err
		}
		if terminal(cur.State) {
			// A tombstone: the name is free to reuse.
			_ = c.kv.Delete(ctx, key, jetstream.LastRevision(curRev))
			continue
		}
		if cur.Class != className {
			return nil, fmt.Errorf("%w: %s/%s exists with class %q, not %q", ErrClassMismatch, o.namespace, name, cur.Class, className)
		}
		if !o.getIfExists {
			return nil, fmt.Errorf("%w: %s/%s (class %q, state %s)", ErrExists, o.namespace, name, cur.Class, cur.State)
		}
		rec, err = c.waitReady(ctx, key)
		if errors.Is(err, ErrNotFound) {
			continue // its creation failed and freed the name: our turn
		}
		if err != nil {
			return nil, fmt.Errorf("actors: get %s/%s: %w", o.namespace, name, err)
		}
		return c.handle(o.namespace, name, className, rec.Epoch), nil
	}
}

// waitReady polls the record until it is ready. It returns ErrNotFound when
// the record disappears or ends (its creation failed).
func (c *Client) waitReady(ctx context.Context, key string) (*Record, error) {
	deadline := time.Now().Add(c.opts.PlacementTimeout + c.opts.ConstructTimeout)
	wait := 5 * time.Millisecond
	for {
		rec, _, err := getRecord(ctx, c.kv, key)
		if err != nil {
			return nil, err
		}
		switch {
		case rec.State == StateReady:
			return rec, nil
		case terminal(rec.State):
			return nil, ErrNotFound
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: not ready (state %s) after %s", ErrActorUnavailable, rec.State, c.opts.PlacementTimeout+c.opts.ConstructTimeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// GetActor returns a handle to the live actor name, or ErrNotFound. Only
// the Namespace option applies.
func (c *Client) GetActor(ctx context.Context, name string, opts ...CreateOption) (*Handle, error) {
	o, err := buildOpts(c.opts.Namespace, opts)
	if err != nil {
		return nil, err
	}
	if err := checkName("actor name", name); err != nil {
		return nil, err
	}
	rec, _, err := getRecord(ctx, c.kv, recordKey(o.namespace, name))
	if errors.Is(err, ErrNotFound) || (err == nil && terminal(rec.State)) {
		return nil, fmt.Errorf("%w: %s/%s", ErrNotFound, o.namespace, name)
	}
	if err != nil {
		return nil, err
	}
	return c.handle(o.namespace, name, rec.Class, rec.Epoch), nil
}

// ListActors returns the records of the actors in namespace ns ("" means
// every namespace), sorted by namespace and name.
func (c *Client) ListActors(ctx context.Context, ns string) ([]*Record, error) {
	return ListActors(ctx, c.kv, ns)
}

// ListActors reads the actor records of namespace ns ("" for all) from the
// FRAY_ACTORS bucket kv, sorted by namespace and name.
func ListActors(ctx context.Context, kv jetstream.KeyValue, ns string) ([]*Record, error) {
	filter := "a.>"
	if ns != "" {
		if err := checkName("namespace", ns); err != nil {
			return nil, err
		}
		filter = "a." + ns + ".>"
	}
	recs, err := listRecords(ctx, kv, filter)
	if err != nil {
		return nil, err
	}
	sortRecords(recs)
	return recs, nil
}

func sortRecords(recs []*Record) {
	for i := 1; i < len(recs); i++ {
		for j := i; j > 0 && (recs[j].Namespace < recs[j-1].Namespace ||
			(recs[j].Namespace == recs[j-1].Namespace && recs[j].Name < recs[j-1].Name)); j-- {
			recs[j], recs[j-1] = recs[j-1], recs[j]
		}
	}
}

// stopActor ends the actor cleanly: it replaces the record with a stopped
// tombstone (which revokes the host's lease) and tells the host at once.
func (e *env) stopActor(ctx context.Context, ns, name, reason string) error {
	key := recordKey(ns, name)
	for range 20 {
		rec, rev, err := getRecord(ctx, e.kv, key)
		if err != nil {
			return err
		}
		if terminal(rec.State) {
			return nil
		}
		rec.State, rec.Error = StateStopped, reason
		data, err := objects.Marshal(rec)
		if err != nil {
			return err
		}
		if _, err := casWrite(ctx, e.js, key, data, rev, TombstoneTTL); errors.Is(err, errRevMismatch) {
			continue // a renewal raced us
		} else if err != nil {
			return err
		}
		// Not restartable any more: no supervisor sweep may bring it back
		// once the tombstone expires. (Should this fail, the sweep removes
		// the standing record when it finds the tombstone.)
		if err := e.dropStanding(ctx, rec); err != nil {
			e.log.Warn("actor standing record removal failed", "actor", key, "err", err)
		}
		e.awaitStop(ctx, ns, name, rec.Epoch)
		return nil
	}
	return fmt.Errorf("actors: stop %s/%s: record keeps changing", ns, name)
}

// stopWait bounds how long a stop waits for the instance to stop serving.
const stopWait = 5 * time.Second

// awaitStop sends stop to the instance of epoch as a request and waits
// until it stopped serving: the instance replies after it unsubscribed
// from the call subject, so a call made after awaitStop returns gets no
// responders. No responders on the control subject means no instance
// serves the name (an instance subscribes to it before the call subject
// and leaves it after). A request left unanswered (only an instance of
// another epoch listens, or the reply was lost) is repeated until the
// control subject has no responders, for at most stopWait or ctx. The
// tombstone is already written, so giving up only leaves the instance to
// notice its lost lease at its next renewal.
func (e *env) awaitStop(ctx context.Context, ns, name string, epoch uint64) {
	ctl, err := objects.Marshal(ctlMsg{V: 1, Op: "stop", Epoch: epoch})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, stopWait)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err := e.nc.RequestWithContext(actx, ctlSubject(ns, name), ctl)
		acancel()
		if err == nil || errors.Is(err, nats.ErrNoResponders) {
			return
		}
		if ctx.Err() != nil {
			e.log.Warn("actor stop not confirmed by its instance; it stops at its next lease renewal",
				"actor", ns+"/"+name, "epoch", epoch, "err", err)
			return
		}
	}
}

// ctlMsg is a control message to a serving instance. Version 1.
type ctlMsg struct {
	V     int    `cbor:"v"`
	Op    string `cbor:"op"` // "stop" or "cancel"
	Epoch uint64 `cbor:"epoch,omitempty"`
	OpID  string `cbor:"op_id,omitempty"`
}

// StopJobActors stops every non-detached actor whose creator job is jobID.
// The jobs system calls it (through Supervisor.JobEnded or directly) when a
// job reaches a terminal state. It returns how many actors it stopped.
func StopJobActors(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, jobID string) (int, error) {
	e, err := newEnv(ctx, nc, js, nil)
	if err != nil {
		return 0, err
	}
	return e.stopJobActors(ctx, jobID)
}

func (e *env) stopJobActors(ctx context.Context, jobID string) (int, error) {
	if jobID == "" {
		return 0, nil
	}
	recs, err := listRecords(ctx, e.kv, "a.>")
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, r := range recs {
		if r.CreatorJob != jobID || r.Detached || terminal(r.State) {
			continue
		}
		if err := e.stopActor(ctx, r.Namespace, r.Name, "creator job "+jobID+" ended"); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
