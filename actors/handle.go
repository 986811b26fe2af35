package actors

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/frayhq/fray/objects"
)

// Handle names an actor and calls it. It serialises (CBOR and JSON) to its
// qualified name "<namespace>/<name>" only; a decoded handle is unbound and
// resolves lazily on its first call through the client bound with Bind or,
// failing that, the client in the call's context (ContextWithClient). Inside
// an actor method and on fray workers the context carries one.
type Handle struct {
	ns, name string
	class    string // known when created or looked up; "" when decoded
	c        *Client
}

// NewHandle returns an unbound handle to name in namespace ns.
func NewHandle(ns, name string) (*Handle, error) {
	if err := checkName("namespace", ns); err != nil {
		return nil, err
	}
	if err := checkName("actor name", name); err != nil {
		return nil, err
	}
	return &Handle{ns: ns, name: name}, nil
}

func (c *Client) handle(ns, name, class string, epoch uint64) *Handle {
	c.mux.target(ns, name).seen(epoch)
	return &Handle{ns: ns, name: name, class: class, c: c}
}

// Name is the actor's name.
func (h *Handle) Name() string {
	if h == nil {
		return ""
	}
	return h.name
}

// Namespace is the actor's namespace.
func (h *Handle) Namespace() string {
	if h == nil {
		return ""
	}
	return h.ns
}

// Class is the actor's class when known (handles from CreateActor and
// GetActor), "" for a decoded handle.
func (h *Handle) Class() string {
	if h == nil {
		return ""
	}
	return h.class
}

// String is "<namespace>/<name>".
func (h *Handle) String() string {
	if h == nil {
		return "<nil actor handle>"
	}
	return h.ns + "/" + h.name
}

// Bind returns a copy of h that calls through c (nil for a nil handle).
func (h *Handle) Bind(c *Client) *Handle {
	if h == nil {
		return nil
	}
	cp := *h
	cp.c = c
	return &cp
}

// Bound reports whether h has a client (false for a nil handle).
func (h *Handle) Bound() bool { return h != nil && h.c != nil }

func (h *Handle) client(ctx context.Context) (*Client, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: nil *actors.Handle (did CreateActor or GetActor fail?)", ErrNotBound)
	}
	if h.c != nil {
		return h.c, nil
	}
	if c := ClientFromContext(ctx); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("%w: %s: call Bind(client) or pass a context from actors.ContextWithClient", ErrNotBound, h)
}

// Call calls method with arg (nil for a method without an argument) and
// returns at once; the Future's Get waits for the result. Calls from one
// caller to an actor with MaxConcurrency 1 run in the order they were made.
// A call without a context deadline gets the client's CallTimeout.
func (h *Handle) Call(ctx context.Context, method string, arg any) *Future {
	c, err := h.client(ctx)
	if err != nil {
		return failedFuture(method, err)
	}
	return c.mux.call(ctx, c.mux.target(h.ns, h.name), method, arg, "")
}

// Shutdown stops the actor cleanly: it is not restarted, its calls in
// flight may fail with ErrActorUnavailable, and the name becomes free. It
// returns once the instance has stopped taking calls (waiting at most 5 s
// or ctx for its confirmation), so a call made afterwards fails with
// ErrActorUnavailable.
func (h *Handle) Shutdown(ctx context.Context) error {
	c, err := h.client(ctx)
	if err != nil {
		return err
	}
	return c.stopActor(ctx, h.ns, h.name, "shut down by a client")
}

// Record reads the actor's current registry record (ErrNotFound if none).
func (h *Handle) Record(ctx context.Context) (*Record, error) {
	c, err := h.client(ctx)
	if err != nil {
		return nil, err
	}
	r, _, err := getRecord(ctx, c.kv, recordKey(h.ns, h.name))
	return r, err
}

// MarshalCBOR encodes the handle as its qualified name (a CBOR text string).
func (h Handle) MarshalCBOR() ([]byte, error) { return objects.Marshal(h.String()) }

// UnmarshalCBOR decodes a qualified name into an unbound handle.
func (h *Handle) UnmarshalCBOR(data []byte) error {
	var s string
	if err := objects.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("actors: handle: %w", err)
	}
	return h.parse(s)
}

// MarshalJSON encodes the handle as its qualified name (a JSON string).
func (h Handle) MarshalJSON() ([]byte, error) { return json.Marshal(h.String()) }

// UnmarshalJSON decodes a qualified name into an unbound handle.
func (h *Handle) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("actors: handle: %w", err)
	}
	return h.parse(s)
}

func (h *Handle) parse(s string) error {
	ns, name := splitQualified(s)
	if ns == "" {
		ns = "default"
	}
	nh, err := NewHandle(ns, name)
	if err != nil {
		return fmt.Errorf("actors: handle %q: %w", s, err)
	}
	*h = *nh
	return nil
}

type clientKey struct{}

// ContextWithClient returns ctx carrying c, through which unbound handles
// (decoded from task arguments, for example) make their calls.
func ContextWithClient(ctx context.Context, c *Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// ClientFromContext returns the client ContextWithClient put in ctx, or nil.
func ClientFromContext(ctx context.Context) *Client {
	c, _ := ctx.Value(clientKey{}).(*Client)
	return c
}
