package actors

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/objects"
)

// RecordVersion is the current Record version.
const RecordVersion = 1

// Actor states in Record.State.
const (
	// StatePlacing: the name is claimed; a host is constructing the instance.
	StatePlacing = "placing"
	// StateReady: an instance serves calls; its host renews the lease.
	StateReady = "ready"
	// StateFailed: the host reported a failure (Fail, or the host is
	// stopping); the supervisor applies the restart policy.
	StateFailed = "failed"
	// StateRestarting: the supervisor is placing a new epoch.
	StateRestarting = "restarting"
	// StateStopped (terminal): the actor ended cleanly (ErrStop, Shutdown,
	// its creator's job ended). A tombstone kept for TombstoneTTL.
	StateStopped = "stopped"
	// StateDead (terminal): the actor failed with no restarts left.
	StateDead = "dead"
)

// terminal reports whether state is final.
func terminal(state string) bool { return state == StateStopped || state == StateDead }

// Record is an actor's entry in the FRAY_ACTORS bucket under key
// "a.<namespace>.<name>", leased with a per-key TTL by whoever owns the
// actor's current phase (creator while claiming, host while serving,
// supervisor while restarting). Version 1. See docs/protocol/actors.md.
type Record struct {
	V         int    `cbor:"v" json:"v"`
	Namespace string `cbor:"ns" json:"namespace"`
	Name      string `cbor:"name" json:"name"`
	Class     string `cbor:"class" json:"class"`
	State     string `cbor:"state" json:"state"`
	// Epoch counts instances: 1 for the first, +1 per restart.
	Epoch uint64 `cbor:"epoch" json:"epoch"`
	// Host is the id of the worker (or process) hosting the current epoch.
	Host string `cbor:"host,omitempty" json:"host,omitempty"`
	// Arg is the CBOR-encoded constructor argument, kept for restarts.
	Arg            objects.RawMessage `cbor:"arg,omitempty" json:"-"`
	Pool           string             `cbor:"pool,omitempty" json:"pool,omitempty"`
	NonPreemptible bool               `cbor:"nonpreempt,omitempty" json:"non_preemptible,omitempty"`
	MaxConcurrency int                `cbor:"max_conc" json:"max_concurrency"`
	MaxRestarts    int                `cbor:"max_restarts,omitempty" json:"max_restarts,omitempty"`
	MaxTaskRetries int                `cbor:"max_task_retries,omitempty" json:"max_task_retries,omitempty"`
	Restarts       int                `cbor:"restarts,omitempty" json:"restarts,omitempty"`
	Detached       bool               `cbor:"detached,omitempty" json:"detached,omitempty"`
	// CreatorJob is the FRAY_JOB_ID of the creating process, if any: a
	// non-detached actor is stopped when that job ends.
	CreatorJob string `cbor:"creator_job,omitempty" json:"creator_job,omitempty"`
	// Group and Index locate a member of an actor group (Index -1 otherwise).
	Group string `cbor:"group,omitempty" json:"group,omitempty"`
	Index int    `cbor:"index" json:"index"`
	// Pinned: hosted by HostActor in the creating process; never restarted.
	Pinned bool `cbor:"pinned,omitempty" json:"pinned,omitempty"`
	// Calls is the number of calls the current epoch has served (updated at
	// each lease renewal).
	Calls     uint64 `cbor:"calls" json:"calls_served"`
	CreatedMS int64  `cbor:"created_ms" json:"created_ms"`
	StartedMS int64  `cbor:"started_ms,omitempty" json:"started_ms,omitempty"`
	// Error is the last failure (constructor error, lost host, Fail reason).
	Error string `cbor:"error,omitempty" json:"error,omitempty"`
	// LeaseMS is the lease TTL of the host serving the current epoch, in
	// ms: how long the supervisor's sweep lets a vanished lease key stay
	// vanished (a live host takes it back meanwhile) before it counts the
	// host as lost.
	LeaseMS int64 `cbor:"lease_ms,omitempty" json:"lease_ms,omitempty"`
}

// Key is the record's key in FRAY_ACTORS.
func (r *Record) Key() string { return recordKey(r.Namespace, r.Name) }

func recordKey(ns, name string) string { return "a." + ns + "." + name }

// standingKey is the key of an actor's standing record in FRAY_ACTORS: a
// copy of its record without a TTL, kept while the actor is not terminal,
// so that a supervisor can restart an actor whose lease key vanished while
// no supervisor watched (see Supervisor).
func standingKey(ns, name string) string { return "s." + ns + "." + name }

// callSubject is where an actor's instance receives calls.
func callSubject(ns, name string) string { return broker.SubjectActorPrefix + ns + "." + name }

// ctlSubject is where an actor's instance receives control messages
// (operation cancel, stop); separate from calls so it never queues behind
// them.
func ctlSubject(ns, name string) string { return broker.SubjectActorPrefix + "_ctl." + ns + "." + name }

// hostSubject is where a host receives placement requests. Characters a
// subject cannot carry in a worker id become '_'.
func hostSubject(hostID string) string {
	return broker.SubjectActorPrefix + "_host." + strings.Map(func(r rune) rune {
		if r == '*' || r == '>' || r <= ' ' {
			return '_'
		}
		return r
	}, hostID)
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// checkName validates a namespace or actor name: it becomes a subject token
// and a KV key token.
func checkName(what, s string) error {
	if len(s) > 200 || !nameRE.MatchString(s) {
		return fmt.Errorf("%w: %s %q: use letters, digits, '-' and '_' (not first), at most 200", ErrBadName, what, s)
	}
	return nil
}

// splitQualified splits "ns/name"; a bare name has namespace "".
func splitQualified(s string) (ns, name string) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return "", s
}

// callMsg is a call record: the body of a request on the actor's call
// subject. Version 1.
type callMsg struct {
	V      int                `cbor:"v"`
	Method string             `cbor:"m"`
	Arg    objects.RawMessage `cbor:"a,omitempty"`
	// Op, when set, starts a long-running operation with this id: the host
	// replies at once and records progress under the op key.
	Op string `cbor:"op,omitempty"`
}

// hdrBarrier marks a barrier sent on an actor's call subject (see
// instance.barrier); its body is a barrierMsg.
const hdrBarrier = "Fray-Barrier"

// barrierMsg names, by reply subject, the calls a client has had no reply
// to since its connection to the broker was lost. Version 1.
type barrierMsg struct {
	V       int      `cbor:"v"`
	Replies []string `cbor:"replies"`
}

// barrierReply lists those of a barrier's calls still running on the
// instance. Version 1.
type barrierReply struct {
	V       int      `cbor:"v"`
	Epoch   uint64   `cbor:"ep"`
	Running []string `cbor:"running,omitempty"`
	// Err is never set by a host that knows barriers: a reply with it is
	// a replyMsg from one that took the barrier for a call.
	Err *wireError `cbor:"e,omitempty"`
}

// replyMsg is a reply record. Version 1.
type replyMsg struct {
	V      int                `cbor:"v"`
	Epoch  uint64             `cbor:"ep"`
	Result objects.RawMessage `cbor:"r,omitempty"`
	Err    *wireError         `cbor:"e,omitempty"`
}

// wireError is an error crossing the wire. Lang, Traceback and Exc are
// optional additions (the version is unchanged); see RemoteError.
type wireError struct {
	Type      string `cbor:"t" json:"type"`
	Message   string `cbor:"msg" json:"message"`
	Host      string `cbor:"host,omitempty" json:"host,omitempty"`
	Lang      string `cbor:"lang,omitempty" json:"lang,omitempty"`
	Traceback string `cbor:"traceback,omitempty" json:"traceback,omitempty"`
	Exc       []byte `cbor:"exc,omitempty" json:"-"`
}

// remote is the RemoteError a caller gets for w.
func (w *wireError) remote(method, host string) *RemoteError {
	return &RemoteError{Method: method, Message: w.Message, Type: w.Type, Host: host, Lang: w.Lang, Traceback: w.Traceback, Exc: w.Exc}
}

// wireOf is the wire form of e.
func wireOf(e *RemoteError) *wireError {
	return &wireError{Type: e.Type, Message: e.Message, Lang: e.Lang, Traceback: e.Traceback, Exc: e.Exc}
}

// placeMsg asks a host to construct and serve an actor. Version 1.
type placeMsg struct {
	V         int    `cbor:"v"`
	Op        string `cbor:"op"` // "place" or "stop"
	Namespace string `cbor:"ns"`
	Name      string `cbor:"name"`
	// Rev is the record revision the placer wrote; the host takes the lease
	// over with a sequence-checked write against it.
	Rev   uint64 `cbor:"rev"`
	Epoch uint64 `cbor:"epoch"`
}

// placeReply answers a placeMsg. Version 1.
type placeReply struct {
	V   int        `cbor:"v"`
	Err *wireError `cbor:"e,omitempty"`
}
