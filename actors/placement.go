package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// env is what clients, hosts and the supervisor share: the connection and
// the two buckets.
type env struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	kv  jetstream.KeyValue // FRAY_ACTORS
	wkv jetstream.KeyValue // FRAY_WORKERS
	log *slog.Logger
	rr  atomic.Uint64
}

func newEnv(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, log *slog.Logger) (*env, error) {
	if nc == nil || js == nil {
		return nil, fmt.Errorf("actors: nil NATS connection or JetStream context")
	}
	kv, err := broker.KeyValue(ctx, js, broker.BucketActors)
	if err != nil {
		return nil, fmt.Errorf("actors: bucket %s (is the broker provisioned?): %w", broker.BucketActors, err)
	}
	wkv, err := broker.KeyValue(ctx, js, broker.BucketWorkers)
	if err != nil {
		return nil, fmt.Errorf("actors: bucket %s (is the broker provisioned?): %w", broker.BucketWorkers, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &env{nc: nc, js: js, kv: kv, wkv: wkv, log: log}
	e.rr.Store(rand.Uint64())
	return e, nil
}

// placement bounds how long place looks for a worker and waits for the
// constructor.
type placement struct {
	timeout     time.Duration // for an eligible worker to exist
	construct   time.Duration // for the host's reply (constructor included)
	excludeHost string        // the host that just died, on restart
	// unknownClassFails ends the wait at once with ErrUnknownClass when the
	// pool has live workers and none of them offers the class: a create
	// then fails as fast as a task for an unregistered function. Restarts
	// keep waiting, as the lost host may come back.
	unknownClassFails bool
}

// place asks an eligible live worker to construct and serve rec, whose
// record is at revision rev. It returns the host id, ErrNoEligibleWorker
// (with a diagnosis) after p.timeout, or the constructor's *RemoteError.
func (e *env) place(ctx context.Context, rec *Record, rev uint64, p placement) (string, error) {
	deadline := time.Now().Add(p.timeout)
	tried := map[string]bool{}
	wait := 20 * time.Millisecond
	for {
		ws, pool, err := e.eligible(ctx, rec, p.excludeHost, tried)
		if err != nil {
			return "", err
		}
		if p.unknownClassFails && pool.live > 0 && pool.withClass == 0 {
			return "", fmt.Errorf("%w %q: no live worker of pool %q offers it (they offer: %s)",
				ErrUnknownClass, rec.Class, rec.Pool, orNone(pool.classes))
		}
		if len(ws) == 0 && len(tried) > 0 {
			// Every candidate had no host subscribed yet (starting) or any
			// more (dying): look again after a pause.
			tried = map[string]bool{}
		}
		if len(ws) == 0 {
			if time.Now().After(deadline) {
				return "", fmt.Errorf("%w for actor %s/%s (class %q, pool %q%s) within %s: %s",
					ErrNoEligibleWorker, rec.Namespace, rec.Name, rec.Class, rec.Pool,
					map[bool]string{true: ", non-preemptible: needs a worker with attribute preemptible=false"}[rec.NonPreemptible],
					p.timeout, pool.diagnosis(rec, p.excludeHost))
			}
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(wait):
			}
			wait = min(2*wait, 250*time.Millisecond)
			continue
		}
		i := e.rr.Add(1)
		if rec.Index >= 0 {
			i = uint64(rec.Index)
		}
		w := ws[int(i%uint64(len(ws)))]
		data, err := objects.Marshal(placeMsg{V: 1, Op: "place", Namespace: rec.Namespace, Name: rec.Name, Rev: rev, Epoch: rec.Epoch})
		if err != nil {
			return "", err
		}
		rctx, cancel := context.WithTimeout(ctx, p.construct)
		msg, err := e.nc.RequestWithContext(rctx, hostSubject(w.ID), data)
		cancel()
		if errors.Is(err, nats.ErrNoResponders) {
			tried[w.ID] = true // registered but not (yet, or any more) serving
			continue
		}
		if err != nil {
			return "", fmt.Errorf("actors: place %s/%s on worker %s: %w", rec.Namespace, rec.Name, w.ID, err)
		}
		var rep placeReply
		if err := objects.Unmarshal(msg.Data, &rep); err != nil {
			return "", fmt.Errorf("actors: placement reply from %s: %w", w.ID, err)
		}
		if rep.Err != nil {
			return "", rep.Err.remote("", w.ID)
		}
		return w.ID, nil
	}
}

// poolView is what eligible saw of rec's pool, for the error when no
// worker can take the actor.
type poolView struct {
	live, withClass, nonPreemptible int
	classes                         []string // offered by the pool's live workers, sorted
}

func (v poolView) diagnosis(rec *Record, exclude string) string {
	d := []string{
		fmt.Sprintf("%d live workers in pool %q", v.live, rec.Pool),
		fmt.Sprintf("%d offer class %q", v.withClass, rec.Class),
	}
	if rec.NonPreemptible {
		d = append(d, fmt.Sprintf("%d of those have preemptible=false", v.nonPreemptible))
	}
	if exclude != "" {
		d = append(d, fmt.Sprintf("excluding lost host %s", exclude))
	}
	return strings.Join(d, ", ")
}

// eligible lists the live workers that may host rec, sorted by id, and
// what it saw of the pool.
func (e *env) eligible(ctx context.Context, rec *Record, exclude string, tried map[string]bool) ([]*broker.WorkerInfo, poolView, error) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	all, err := listWorkers(lctx, e.wkv)
	if err != nil {
		return nil, poolView{}, err
	}
	var out []*broker.WorkerInfo
	var v poolView
	for _, w := range all {
		if w.Pool != rec.Pool || w.Draining {
			continue
		}
		v.live++
		for _, c := range w.ActorClasses {
			if !slices.Contains(v.classes, c) {
				v.classes = append(v.classes, c)
			}
		}
		if !slices.Contains(w.ActorClasses, rec.Class) {
			continue
		}
		v.withClass++
		if rec.NonPreemptible && w.Attributes["preemptible"] != "false" {
			continue
		}
		v.nonPreemptible++
		if w.ID == exclude || tried[w.ID] {
			continue
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	sort.Strings(v.classes)
	return out, v, nil
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
