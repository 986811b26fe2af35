package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/frayhq/fray/broker"
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

// Identify resolves the id of a worker about to start on nc: id if set,
// else the one worker id nc's credentials allow, else DefaultID; and
// checks that the credentials allow it (CheckIdentity). When the server
// does not say who the user is, it returns id unchecked with the error.
func Identify(ctx context.Context, nc *nats.Conn, id string) (string, error) {
	u, err := broker.WhoAmI(ctx, nc)
	if err != nil {
		return id, err
	}
	if id == "" {
		if ids := CredentialIDs(u); len(ids) == 1 {
			id = ids[0]
		} else {
			id = DefaultID()
		}
	}
	return id, CheckIdentity(u, id)
}
