package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// HostOptions configures a Host. Every field has a default.
type HostOptions struct {
	// LeaseTTL is the lifetime of each actor's registry entry without
	// renewal; the host renews every LeaseTTL/3. A SIGKILLed host's actors
	// are restarted about LeaseTTL later. Defaults to $FRAY_ACTOR_LEASE_TTL
	// (a Go duration) if set, else 10 s; at least 1 s.
	LeaseTTL time.Duration
	// Client configures the client that actors get in their context for
	// calling other actors.
	Client ClientOptions
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// EnvLeaseTTL overrides the default actor lease TTL of hosts (a Go
// duration such as "2s"); tests use it to make restarts quick.
const EnvLeaseTTL = "FRAY_ACTOR_LEASE_TTL"

// Host serves the actor classes of a Registry on a worker. It is a worker
// plugin (worker.Plugin): Describe advertises the classes in the worker's
// record, Run serves placement requests addressed to the worker's id.
type Host struct {
	reg  *Registry
	opts HostOptions

	mu        sync.Mutex
	instances map[string]*instance
}

// NewHost returns a host for reg's classes.
func NewHost(reg *Registry, opts HostOptions) *Host {
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = 10 * time.Second
		if d, err := time.ParseDuration(os.Getenv(EnvLeaseTTL)); err == nil && d > 0 {
			opts.LeaseTTL = d
		}
	}
	opts.LeaseTTL = max(opts.LeaseTTL, time.Second)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Client.Logger == nil {
		opts.Client.Logger = opts.Logger
	}
	return &Host{reg: reg, opts: opts, instances: map[string]*instance{}}
}

// Describe adds the registry's classes to the worker's ActorClasses.
func (h *Host) Describe(info *broker.WorkerInfo) {
	for _, c := range h.reg.Classes() {
		if !slices.Contains(info.ActorClasses, c) {
			info.ActorClasses = append(info.ActorClasses, c)
		}
	}
}

// Run serves placement requests for self.ID until ctx ends. Then every
// instance stops and is marked failed, so the supervisor restarts it
// elsewhere while its restarts last.
func (h *Host) Run(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, self *broker.WorkerInfo) error {
	// Set-up steps the server may refuse or time out while thousands of
	// workers start together are retried with backoff.
	var e *env
	var client *Client
	if err := broker.Retry(ctx, h.opts.Logger, "start the actor host", func(sctx context.Context) (err error) {
		if e == nil {
			if e, err = newEnv(sctx, nc, js, h.opts.Logger); err != nil {
				return err
			}
		}
		client, err = NewClient(sctx, nc, js, h.opts.Client)
		return err
	}); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer client.Close()
	var wg sync.WaitGroup
	sub, err := nc.Subscribe(hostSubject(self.ID), func(msg *nats.Msg) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.place(ctx, e, client, self.ID, msg)
		}()
	})
	if err != nil {
		return fmt.Errorf("actors: host subscription: %w", err)
	}
	h.opts.Logger.Info("actor host serving", "worker", self.ID, "classes", h.reg.Classes())
	<-ctx.Done()
	_ = sub.Unsubscribe()
	wg.Wait()
	h.mu.Lock()
	all := make([]*instance, 0, len(h.instances))
	for _, in := range h.instances {
		all = append(all, in)
	}
	h.mu.Unlock()
	for _, in := range all {
		in.stop(stopFailed, "host "+self.ID+" stopped")
	}
	return nil
}

func (h *Host) place(ctx context.Context, e *env, client *Client, hostID string, msg *nats.Msg) {
	respond := func(err error) {
		rep := placeReply{V: 1}
		if err != nil {
			var re *RemoteError
			if errors.As(err, &re) {
				rep.Err = wireOf(re)
			} else {
				rep.Err = &wireError{Type: TypeConstructor, Message: err.Error()}
			}
		}
		if data, err := objects.Marshal(rep); err == nil {
			_ = msg.Respond(data)
		}
	}
	var pm placeMsg
	if err := objects.Unmarshal(msg.Data, &pm); err != nil {
		respond(&RemoteError{Type: TypeBadArgument, Message: "malformed placement request: " + err.Error()})
		return
	}
	key := recordKey(pm.Namespace, pm.Name)
	rec, rev, err := getRecord(ctx, e.kv, key)
	if err != nil {
		respond(fmt.Errorf("placement of %s: %w", key, err))
		return
	}
	if rev != pm.Rev || rec.Epoch != pm.Epoch {
		respond(fmt.Errorf("stale placement of %s (revision %d, epoch %d; record at %d, epoch %d)", key, pm.Rev, pm.Epoch, rev, rec.Epoch))
		return
	}
	cls, ok := h.reg.lookup(rec.Class)
	if !ok {
		respond(&RemoteError{Type: TypeUnknownClass, Message: fmt.Sprintf("worker %s does not register class %q", hostID, rec.Class)})
		return
	}
	in := newInstance(e, client, hostID, h.opts.LeaseTTL, rec, rev)
	in.onStop = func(in *instance) {
		h.mu.Lock()
		if h.instances[key] == in {
			delete(h.instances, key)
		}
		h.mu.Unlock()
	}
	h.mu.Lock()
	old := h.instances[key]
	h.instances[key] = in
	h.mu.Unlock()
	if old != nil {
		old.stop(stopLeaseGone, "") // a stale epoch of the same actor
	}
	err = in.start(func(ctx context.Context) (any, *methodSet, error) {
		v, err := cls.ctor(ctx, rec.Arg)
		var re *RemoteError
		if errors.As(err, &re) {
			return nil, nil, re // described by a dynamic class
		}
		if err != nil {
			typ := fmt.Sprintf("%T", err)
			if errors.Is(err, ErrBadArgument) {
				typ = TypeBadArgument // the argument does not decode into the constructor's type
			}
			return nil, nil, &RemoteError{Type: typ, Lang: "go", Message: err.Error()}
		}
		return v, cls.methods, nil
	})
	if err != nil {
		in.onStop(in)
		e.log.Info("actor placement failed", "actor", key, "epoch", rec.Epoch, "err", err)
		respond(err)
		return
	}
	e.log.Info("actor started", "actor", key, "class", rec.Class, "epoch", rec.Epoch)
	respond(nil)
}
