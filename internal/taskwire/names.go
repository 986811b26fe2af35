package taskwire

import (
	"errors"
	"fmt"
	"strings"

	"github.com/frayhq/fray/broker"
)

var (
	// ErrBadName reports an invalid pool or function name (tasks.ErrBadName).
	ErrBadName = errors.New("tasks: bad name")
	// ErrBadID reports a malformed future id (tasks.ErrBadID).
	ErrBadID = errors.New("tasks: bad future id")
)

// DefaultPool is the pool tasks go to unless their producer names one
// (tasks.DefaultPool).
const DefaultPool = "default"

// TaskSubject is the subject a pool's tasks are published on.
func TaskSubject(pool string) string { return broker.SubjectTasksPrefix + pool }

// ConsumerName is the durable consumer of a pool on FRAY_TASKS.
func ConsumerName(pool string) string { return consumerPrefix + pool }

const consumerPrefix = "pool-"

// PullPrefix starts the JetStream API subject a pool's workers pull its
// tasks with: PullPrefix + ConsumerName(pool).
const PullPrefix = "$JS.API.CONSUMER.MSG.NEXT." + broker.StreamTasks + "."

// PoolOfConsumer is the pool whose durable consumer is named name, or ""
// when name is not a pool's consumer.
func PoolOfConsumer(name string) string {
	pool, _ := strings.CutPrefix(name, consumerPrefix)
	if pool == name {
		return ""
	}
	return pool
}

// ResultSubject is the subject of a task's result.
func ResultSubject(owner, id string) string {
	return broker.SubjectResultsPrefix + owner + "." + id
}

// StoredSubject is where a task's result is republished once stored.
func StoredSubject(owner, id string) string {
	return broker.SubjectStoredPrefix + owner + "." + id
}

// FutureID is the public id of a task: "<owner>.<task-id>", the two last
// tokens of its result subject.
func FutureID(owner, id string) string { return owner + "." + id }

// ParseFutureID splits a future id into owner and task id.
func ParseFutureID(fid string) (owner, id string, err error) {
	owner, id, ok := strings.Cut(fid, ".")
	if !ok || !ValidToken(owner) || !ValidToken(id) {
		return "", "", fmt.Errorf("%w: future id %q: want <owner>.<task-id>", ErrBadID, fid)
	}
	return owner, id, nil
}

// ValidToken reports whether s can be a pool or function name: a non-empty
// NATS subject token (no spaces, dots or wildcards) of at most 128 bytes.
func ValidToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == '.' || r == '*' || r == '>' || r == 0x7f {
			return false
		}
	}
	return true
}

// CheckPool returns an error when pool cannot name a pool.
func CheckPool(pool string) error {
	if !ValidToken(pool) {
		return fmt.Errorf("%w: pool %q: want a non-empty name without spaces, '.', '*' or '>'", ErrBadName, pool)
	}
	return nil
}

// CheckFunction returns an error when name cannot name a function: it must
// be 1 to 256 bytes without white space or control characters.
func CheckFunction(name string) error {
	ok := name != "" && len(name) <= 256
	for _, r := range name {
		if r <= ' ' || r == 0x7f {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("%w: function %q: want 1 to 256 bytes without spaces or control characters", ErrBadName, name)
	}
	return nil
}
