package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// How provisioning talks to a JetStream cluster that may still be forming.
//
// nats-server answers nothing while it has no meta leader (for its first
// 10 s, then 503), and a stream create that races an equal create from
// another node is never answered: the server re-proposes the equal
// assignment and carries the first one's "responded" mark over, so only
// one of the racing callers hears back. Provisioning therefore never trusts
// one long request: every request is short, and after a silence it looks
// again at what exists. An asset is done when the stream behind it exists
// with a leader and carries this layout's config fingerprint.
const (
	// infoWait bounds one stream info request.
	infoWait = 2 * time.Second
	// metaWait bounds one account info request, which only a meta leader
	// answers.
	metaWait = time.Second
	// changeWait bounds one create or update request. A slower create is
	// no failure: the next look finds the stream being made.
	changeWait = 2 * time.Second
	// retryPause is the pause between tries while the cluster forms.
	retryPause = 250 * time.Millisecond
	// reportAfter is how long provisioning waits before it says why: a
	// cluster starting together forms within it.
	reportAfter = 2 * time.Second
	// reportEvery repeats an unchanged wait reason this often.
	reportEvery = 5 * time.Second
)

// MetadataConfigKey is the metadata key holding a fingerprint of the
// configuration Provision asked for, so that a provisioned asset is left
// alone instead of updated on every start.
const MetadataConfigKey = "fray.config"

// JetStream API error codes provisioning waits out.
const (
	errCodeNoPeers        = 10005 // too few peers for the replicas
	errCodeClusterNotAvl  = 10008 // no meta leader (503)
	errCodeNotLeader      = 10009
	errCodeInsufficient   = 10023 // insufficient resources (peers)
	errCodeReplicasNotSup = 10074 // replicas > 1 on a single server
)

// ErrReplicasNeedCluster is matched (errors.Is) by the error Provision
// returns when asked for 3 replicas on a server that is not clustered.
var ErrReplicasNeedCluster = errors.New("broker: replicas > 1 need a clustered NATS")

// asset is one stream, bucket or object store to bring to its config.
type asset struct {
	what        string // for messages: "stream FRAY_TASKS"
	stream      string // the JetStream stream behind it
	fingerprint string
	create      func(context.Context) error
	update      func(context.Context) error
}

// waiter retries what a forming cluster cures and reports what it waits for.
type waiter struct {
	onWait   func(string)
	replicas int
	began    time.Time // first pause: short waits are not reported
	last     string
	lastAt   time.Time
}

// pause reports what is awaited (when it changed or reportEvery passed) and
// waits retryPause; it fails when ctx ends.
func (w *waiter) pause(ctx context.Context, what string) error {
	if w.began.IsZero() {
		w.began = time.Now()
	}
	if w.onWait != nil && time.Since(w.began) >= reportAfter && (what != w.last || time.Since(w.lastAt) >= reportEvery) {
		w.onWait(what)
		w.last, w.lastAt = what, time.Now()
	}
	select {
	case <-ctx.Done():
		return fmt.Errorf("broker: provision: gave up waiting for %s: %w", what, ctx.Err())
	case <-time.After(retryPause):
		return nil
	}
}

// waitJetStream waits until the JetStream API answers: in a cluster, until
// there is a meta leader.
func (w *waiter) waitJetStream(ctx context.Context, js jetstream.JetStream) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, metaWait)
		_, err := js.AccountInfo(rctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !transient(err) {
			return fmt.Errorf("broker: provision: JetStream account info: %w", err)
		}
		if err := w.pause(ctx, "a JetStream meta leader (a majority of the cluster's nodes up and routed to each other): "+w.reason(err)); err != nil {
			return err
		}
	}
}

// ensure brings a to its config, waiting out a forming cluster.
func (w *waiter) ensure(ctx context.Context, js jetstream.JetStream, a asset) error {
	for {
		err := a.try(ctx, js)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !transient(err) {
			var api *jetstream.APIError
			if errors.As(err, &api) && api.ErrorCode == errCodeReplicasNotSup {
				return fmt.Errorf("%w: provision %s: %v", ErrReplicasNeedCluster, a.what, err)
			}
			if errors.Is(err, ErrLayoutTooNew) {
				return err
			}
			return fmt.Errorf("broker: provision %s: %w", a.what, err)
		}
		if err := w.pause(ctx, a.what+": "+w.reason(err)); err != nil {
			return err
		}
	}
}

// errNoLeader and errRace are the transient states try reports.
var (
	errNoLeader = errors.New("it has no leader yet")
	errRace     = errors.New("created concurrently by another node; looking again")
)

// try makes one pass: look, then create or update if needed.
func (a asset) try(ctx context.Context, js jetstream.JetStream) error {
	ictx, cancel := context.WithTimeout(ctx, infoWait)
	s, err := js.Stream(ictx, a.stream)
	cancel()
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		cctx, cancel := context.WithTimeout(ctx, changeWait)
		defer cancel()
		err := a.create(cctx)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) || errors.Is(err, jetstream.ErrBucketExists) {
			return errRace
		}
		return err
	}
	if err != nil {
		return err
	}
	info := s.CachedInfo()
	v, _ := strconv.Atoi(info.Config.Metadata[MetadataLayoutKey])
	if v > LayoutVersion {
		return fmt.Errorf("%w: stream %s has layout %d, this fray knows %d", ErrLayoutTooNew, a.stream, v, LayoutVersion)
	}
	if info.Config.Metadata[MetadataConfigKey] != a.fingerprint {
		uctx, cancel := context.WithTimeout(ctx, changeWait)
		defer cancel()
		if err := a.update(uctx); err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) {
				return errRace
			}
			return err
		}
		return nil
	}
	if info.Cluster != nil && info.Cluster.Leader == "" {
		return errNoLeader
	}
	return nil
}

// transient reports an error a forming cluster cures: silence, a missing
// meta or stream leader, too few peers for the replicas yet.
func transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, errNoLeader) || errors.Is(err, errRace) {
		return true
	}
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode {
		case errCodeNoPeers, errCodeClusterNotAvl, errCodeNotLeader, errCodeInsufficient:
			return true
		}
	}
	return false
}

// reason says in words why a transient error is being waited out.
func (w *waiter) reason(err error) string {
	var api *jetstream.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), errors.Is(err, jetstream.ErrNoStreamResponse):
		return "no answer from JetStream yet"
	case errors.As(err, &api) && (api.ErrorCode == errCodeNoPeers || api.ErrorCode == errCodeInsufficient):
		return fmt.Sprintf("its %d replicas need %d JetStream nodes up (server says: %s)", w.replicas, w.replicas, api.Description)
	case errors.As(err, &api) && api.ErrorCode == errCodeClusterNotAvl:
		return "JetStream has no meta leader"
	}
	return err.Error()
}

// fingerprint is a short digest of a config (without its metadata, which
// carries the fingerprint).
func fingerprint(cfg any) string {
	b, err := json.Marshal(cfg)
	if err != nil {
		panic(fmt.Sprintf("broker: fingerprint of %T: %v", cfg, err)) // configs are plain data
	}
	// The layout version is part of the digest, so a new version rewrites
	// every asset's metadata once, even where its settings did not change.
	b = strconv.AppendInt(b, LayoutVersion, 10)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}
