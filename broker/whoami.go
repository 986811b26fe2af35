package broker

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
)

// UserInfo is what the server says of a connection's user
// (UserInfoSubject): its name, account and permissions.
type UserInfo struct {
	User    string
	Account string
	// Publish and Subscribe are the user's subject permissions; nil
	// when the user is unrestricted in that direction.
	Publish, Subscribe *SubjectPermissions
}

// SubjectPermissions are the allow and deny patterns of one direction.
type SubjectPermissions struct {
	Allow []string `json:"allow,omitempty"`
	Deny  []string `json:"deny,omitempty"`
}

// Allows reports whether a user with permissions p may use subject: p is
// nil (unrestricted), or an allow pattern matches (or there are none)
// and no deny pattern does.
func (p *SubjectPermissions) Allows(subject string) bool {
	if p == nil {
		return true
	}
	for _, d := range p.Deny {
		if SubjectMatches(d, subject) {
			return false
		}
	}
	if len(p.Allow) == 0 {
		return true
	}
	for _, a := range p.Allow {
		if SubjectMatches(a, subject) {
			return true
		}
	}
	return false
}

// Name is the user's name with its account, as permission errors print
// it: "alice (account a)".
func (u *UserInfo) Name() string {
	if u.Account != "" && u.Account != "$G" {
		return u.User + " (account " + u.Account + ")"
	}
	return u.User
}

// WhoAmI asks the server who nc's user is and what it may do.
// A user refused that subject fails at once with a *PermissionError.
func WhoAmI(ctx context.Context, nc *nats.Conn) (*UserInfo, error) {
	gctx, cancel := GuardPublish(ctx, nc, UserInfoSubject)
	defer cancel()
	u, err := whoAmI(gctx, nc)
	return u, Denied(gctx, err)
}

// whoAmI is WhoAmI unguarded: the permission watcher asks it while it
// holds its own lock.
func whoAmI(ctx context.Context, nc *nats.Conn) (*UserInfo, error) {
	msg, err := nc.RequestWithContext(ctx, UserInfoSubject, nil)
	if err != nil {
		return nil, fmt.Errorf("broker: ask the server who this user is (%s): %w", UserInfoSubject, err)
	}
	var resp struct {
		Data *struct {
			User        string `json:"user"`
			UserName    string `json:"user_name"`
			Account     string `json:"account"`
			Permissions *struct {
				Publish   *SubjectPermissions `json:"publish"`
				Subscribe *SubjectPermissions `json:"subscribe"`
			} `json:"permissions"`
		} `json:"data"`
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("broker: user info: %w", err)
	}
	if resp.Data == nil || resp.Data.User == "" {
		return nil, fmt.Errorf("broker: user info: the server did not say who this user is")
	}
	d := resp.Data
	u := &UserInfo{User: d.User, Account: d.Account}
	if d.UserName != "" {
		u.User = d.UserName
	}
	if d.Permissions != nil {
		u.Publish, u.Subscribe = d.Permissions.Publish, d.Permissions.Subscribe
	}
	return u, nil
}

// WorkerKeySubject is the subject a worker writes its registry entry on:
// its key in FRAY_WORKERS is its id.
func WorkerKeySubject(workerID string) string { return "$KV." + BucketWorkers + "." + workerID }
