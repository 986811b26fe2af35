package broker

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// ErrPermissionDenied is matched (errors.Is) by every error fray returns
// because the server refused a publish or a subscription to the
// connection's user. The error is a *PermissionError naming both.
var ErrPermissionDenied = errors.New("permission denied")

// PermissionError is a publish or subscription the server refused.
type PermissionError struct {
	User    string // the connection's user as the server knows it, or "" when unknown
	Op      string // "publish" or "subscribe"
	Subject string
}

func (e *PermissionError) Error() string {
	who := "this connection's user"
	if e.User != "" {
		who = "user " + e.User
	}
	return fmt.Sprintf("permission denied: %s may not %s to %q (the server's permissions refuse it; see fray auth)", who, e.Op, e.Subject)
}

// Is makes errors.Is(err, ErrPermissionDenied) hold.
func (e *PermissionError) Is(target error) bool { return target == ErrPermissionDenied }

// UserInfoSubject answers every client with its user, account and
// permissions (nats-server's user info service); a role that should hear
// its own name in permission errors needs to publish to it.
const UserInfoSubject = "$SYS.REQ.USER.INFO"

var violationRe = regexp.MustCompile(`for (Publish|Subscription) to "([^"]+)"`)

// permissions watches one connection's permission violations. nats.go
// reports a refused publish only through the connection's async error
// handler (a request to a refused subject just waits for its timeout), so
// the watcher turns each report into a *PermissionError and hands it to
// the calls waiting on that subject.
type permissions struct {
	nc        *nats.Conn
	prev      nats.ErrHandler
	mu        sync.Mutex
	listeners map[int]func(*PermissionError)
	next      int
	user      string
	userKnown bool
}

var watched sync.Map // *nats.Conn → *permissions

// watch returns nc's watcher, installing it (chained before any error
// handler already set) on first use.
func watch(nc *nats.Conn) *permissions {
	if p, ok := watched.Load(nc); ok {
		return p.(*permissions)
	}
	p := &permissions{nc: nc, listeners: map[int]func(*PermissionError){}}
	if actual, loaded := watched.LoadOrStore(nc, p); loaded {
		return actual.(*permissions)
	}
	p.prev = nc.ErrorHandler()
	nc.SetErrorHandler(p.onError)
	nc.SetClosedHandler(chainClosed(nc.ClosedHandler(), func() { watched.Delete(nc) }))
	return p
}

func chainClosed(prev nats.ConnHandler, f func()) nats.ConnHandler {
	return func(nc *nats.Conn) {
		f()
		if prev != nil {
			prev(nc)
		}
	}
}

func (p *permissions) onError(nc *nats.Conn, sub *nats.Subscription, err error) {
	if p.prev != nil {
		p.prev(nc, sub, err)
	}
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return
	}
	m := violationRe.FindStringSubmatch(err.Error())
	if m == nil {
		return
	}
	op := "publish"
	if m[1] == "Subscription" {
		op = "subscribe"
	}
	pe := &PermissionError{User: p.userName(), Op: op, Subject: m[2]}
	p.mu.Lock()
	ls := make([]func(*PermissionError), 0, len(p.listeners))
	for _, l := range p.listeners {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	for _, l := range ls {
		l(pe)
	}
}

// userName asks the server once who this connection is; it falls back to
// the user name the connection was given.
func (p *permissions) userName() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.userKnown {
		return p.user
	}
	p.userKnown = true
	p.user = p.nc.Opts.User
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if u, err := whoAmI(ctx, p.nc); err == nil {
		p.user = u.Name()
	}
	return p.user
}

// OnPermissionDenied calls f with every publish or subscription the server
// refuses on nc from now on, until stop is called. f must not block.
func OnPermissionDenied(nc *nats.Conn, f func(*PermissionError)) (stop func()) {
	p := watch(nc)
	p.mu.Lock()
	id := p.next
	p.next++
	p.listeners[id] = f
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.listeners, id)
		p.mu.Unlock()
	}
}

// GuardPublish returns a context that ends, with a *PermissionError as its
// cause, as soon as the server refuses a publish on nc to a subject that
// one of patterns (NATS subjects, wildcards allowed) matches. Wrap a request in
// it and pass its error through Denied, so that a refused request fails
// at once naming the subject and the user instead of waiting out its
// timeout.
func GuardPublish(ctx context.Context, nc *nats.Conn, patterns ...string) (context.Context, context.CancelFunc) {
	gctx, cancel := context.WithCancelCause(ctx)
	stop := OnPermissionDenied(nc, func(e *PermissionError) {
		if e.Op != "publish" {
			return
		}
		for _, p := range patterns {
			if SubjectMatches(p, e.Subject) {
				cancel(e)
				return
			}
		}
	})
	return gctx, func() { stop(); cancel(context.Canceled) }
}

// Denied is the *PermissionError that ended ctx (made by GuardPublish),
// else err.
func Denied(ctx context.Context, err error) error {
	var pe *PermissionError
	if errors.As(context.Cause(ctx), &pe) {
		return pe
	}
	return err
}

// Subscribe subscribes and waits for the server's verdict (Verify), so
// that a subscription the user may not make fails here with a
// *PermissionError instead of silently never receiving.
func Subscribe(ctx context.Context, nc *nats.Conn, subj string, cb nats.MsgHandler) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(subj, cb)
	if err != nil {
		return nil, err
	}
	if err := Verify(ctx, nc, sub); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	return sub, nil
}

// Verify makes a round trip to the server, after which a refusal of sub
// has been read, and returns it as a *PermissionError.
func Verify(ctx context.Context, nc *nats.Conn, sub *nats.Subscription) error {
	if _, ok := ctx.Deadline(); !ok { // FlushWithContext needs one
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		return err
	}
	if err := nc.LastError(); errors.Is(err, nats.ErrPermissionViolation) {
		if m := violationRe.FindStringSubmatch(err.Error()); m != nil && m[1] == "Subscription" && m[2] == sub.Subject {
			return &PermissionError{User: watch(nc).userName(), Op: "subscribe", Subject: sub.Subject}
		}
	}
	return nil
}

// SubjectMatches reports whether subject matches pattern, which may hold
// the NATS wildcards * (one token) and > (the rest).
func SubjectMatches(pattern, subject string) bool {
	for {
		pt, prest, pmore := cut(pattern)
		st, srest, smore := cut(subject)
		switch {
		case pt == ">":
			return st != ""
		case pt != "*" && pt != st, st == "":
			return false
		case !pmore || !smore:
			return pmore == smore
		}
		pattern, subject = prest, srest
	}
}

func cut(s string) (tok, rest string, more bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
