package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/taskwire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// ErrIdentity is a worker id its credentials do not allow: the user may
// not write that id's registry entry.
var ErrIdentity = errors.New("worker id not allowed by its credentials")

// DefaultID is the id of a worker started without one: "<host>-<random>".
func DefaultID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%s", host, nuid.Next()[16:])
}

// CredentialIDs are the worker ids that u's permissions name one by one
// (its grants on registry keys without wildcards), e.g. the one id of a
// `fray auth init` worker user; none for an unrestricted user.
func CredentialIDs(u *broker.UserInfo) []string {
	if u.Publish == nil {
		return nil
	}
	prefix := broker.WorkerKeySubject("")
	var ids []string
	for _, a := range u.Publish.Allow {
		if id, ok := strings.CutPrefix(a, prefix); ok && id != "" && !strings.ContainsAny(id, "*>") {
			ids = append(ids, id)
		}
	}
	return ids
}

// CheckIdentity returns an ErrIdentity naming the user and the ids it
// allows when u may not register a worker with id, else nil.
func CheckIdentity(u *broker.UserInfo, id string) error {
	if u.Publish.Allows(broker.WorkerKeySubject(id)) {
		return nil
	}
	err := fmt.Errorf("%w: user %s may not write %s", ErrIdentity, u.Name(), broker.WorkerKeySubject(id))
	switch ids := CredentialIDs(u); len(ids) {
	case 0:
		return fmt.Errorf("%w, nor any worker's registry entry: these are not a worker's credentials", err)
	case 1:
		return fmt.Errorf("%w: these credentials are worker %s's; start it with --id %s, or give worker %s its own credentials", err, ids[0], ids[0], id)
	default:
		return fmt.Errorf("%w: these credentials allow the worker ids %s", err, strings.Join(ids, ", "))
	}
}

// ErrPool is a pool its credentials do not let a worker pull from.
var ErrPool = errors.New("pool not allowed by the worker's credentials")

// CredentialPools are the pools whose tasks u's permissions let it pull
// one by one (a `fray auth init` worker user names one); none for a user
// that may pull any pool's or none.
func CredentialPools(u *broker.UserInfo) []string {
	if u.Publish == nil {
		return nil
	}
	var pools []string
	for _, a := range u.Publish.Allow {
		if cons, ok := strings.CutPrefix(a, taskwire.PullPrefix); ok && !strings.ContainsAny(cons, "*>") {
			if pool := taskwire.PoolOfConsumer(cons); pool != "" {
				pools = append(pools, pool)
			}
		}
	}
	return pools
}

// CheckPool returns an ErrPool naming the user and the pools it allows
// when u may not pull pool's tasks, else nil.
func CheckPool(u *broker.UserInfo, pool string) error {
	if u.Publish.Allows(taskwire.PullPrefix + taskwire.ConsumerName(pool)) {
		return nil
	}
	err := fmt.Errorf("%w: user %s may not pull pool %s's tasks", ErrPool, u.Name(), pool)
	if pools := CredentialPools(u); len(pools) > 0 {
		return fmt.Errorf("%w: these credentials serve pool %s; start it with --pool %s, or give it credentials for pool %s", err, strings.Join(pools, ", "), pools[0], pool)
	}
	return err
}

// Identify resolves the id and pool of a worker about to start on nc.
// Its id is id if set, else the one worker id nc's credentials allow,
// else DefaultID; its pool is pool if set, else the one pool the
// credentials allow, else tasks' default pool. It checks that the
// credentials allow both (ErrIdentity, ErrPool). When the server does not
// say who the user is, it returns them unchecked with the error.
func Identify(ctx context.Context, nc *nats.Conn, id, pool string) (string, string, error) {
	u, err := broker.WhoAmI(ctx, nc)
	if err != nil {
		if pool == "" {
			pool = taskwire.DefaultPool
		}
		return id, pool, err
	}
	if id == "" {
		if ids := CredentialIDs(u); len(ids) == 1 {
			id = ids[0]
		} else {
			id = DefaultID()
		}
	}
	if pool == "" {
		if pools := CredentialPools(u); len(pools) == 1 {
			pool = pools[0]
		} else {
			pool = taskwire.DefaultPool
		}
	}
	if err := CheckIdentity(u, id); err != nil {
		return id, pool, err
	}
	return id, pool, CheckPool(u, pool)
}
