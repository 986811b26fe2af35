package actors

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/frayhq/fray/objects"
)

// DynamicInstance is an actor instance whose methods are not Go methods:
// code that another language's runtime serves, say. Arguments and results
// are raw CBOR, passed through unchanged.
type DynamicInstance interface {
	// Methods lists the methods Call accepts; a call of another method
	// fails with ErrNoSuchMethod without reaching Call.
	Methods() []string
	// Call runs method with the CBOR-encoded argument arg (nil when the
	// caller sent none) and returns the CBOR-encoded result. A *RemoteError
	// describes a method error in full (type, language, traceback); an
	// error wrapping ErrInstanceLost means the instance is gone (its
	// process died): the call gets no reply, the actor fails and the
	// restart policy applies, and the caller sees ErrActorUnavailable or
	// its call retried per MaxTaskRetries. Calls run at most
	// MaxConcurrency at a time, in arrival order when it is 1.
	Call(ctx context.Context, method string, arg []byte) (objects.RawMessage, error)
	// Done is closed when the instance can no longer serve (its process
	// died); Err then says why. The actor fails as for ErrInstanceLost.
	Done() <-chan struct{}
	Err() error
	// Close releases the instance (ends its process). It is called once,
	// when the actor stops for any reason.
	Close()
}

// ErrInstanceLost, wrapped by a DynamicInstance's Call error, means the
// instance died while running the call.
var ErrInstanceLost = errors.New("actors: instance lost")

// DynamicConstructor builds a DynamicInstance from the CBOR-encoded
// constructor argument. Its ctx carries the actor's identity (Current). A
// *RemoteError describes a constructor error in full.
type DynamicConstructor func(ctx context.Context, arg []byte) (DynamicInstance, error)

// RegisterDynamic adds a class whose instances are DynamicInstances built by
// ctor: its methods are known only to the instance (Methods). Everything
// else about the actor (leases, restarts, MaxConcurrency, ordered calls,
// operations, placement) is as for Go classes.
func (reg *Registry) RegisterDynamic(className string, ctor DynamicConstructor) error {
	if className == "" {
		return fmt.Errorf("actors: register: empty class name")
	}
	if ctor == nil {
		return fmt.Errorf("actors: register %s: nil constructor", className)
	}
	return reg.add(&class{name: className, ctor: func(ctx context.Context, raw []byte) (any, error) {
		d, err := ctor(ctx, raw)
		if err != nil {
			return nil, err
		}
		if d == nil {
			return nil, fmt.Errorf("constructor returned a nil instance")
		}
		return d, nil
	}})
}

// dynamic is a started DynamicInstance and its method set.
type dynamic struct {
	d       DynamicInstance
	methods map[string]bool
}

func newDynamic(d DynamicInstance) *dynamic {
	x := &dynamic{d: d, methods: map[string]bool{}}
	for _, m := range d.Methods() {
		x.methods[m] = true
	}
	return x
}

func (x *dynamic) names() []string {
	out := make([]string, 0, len(x.methods))
	for m := range x.methods {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// lostCall is invoke's answer for a call whose dynamic instance died: no
// reply is sent.
var lostCall = &wireError{Type: "fray.InstanceLost"}

// watchDynamic fails the instance when its dynamic instance dies.
func (in *instance) watchDynamic() {
	select {
	case <-in.dyn.d.Done():
		in.stop(stopFailed, "instance lost: "+errText(in.dyn.d.Err()))
	case <-in.ctx.Done():
	}
}

func errText(err error) string {
	if err == nil {
		return "no reason given"
	}
	return err.Error()
}

// invokeDynamic runs one call on the dynamic instance.
func (in *instance) invokeDynamic(ctx context.Context, cm *callMsg) (objects.RawMessage, *wireError, bool) {
	if !in.dyn.methods[cm.Method] {
		return nil, &wireError{Type: TypeNoSuchMethod, Message: fmt.Sprintf("class %s has no method %q (methods: %s)",
			in.rec.Class, cm.Method, strings.Join(in.dyn.names(), ", "))}, false
	}
	arg := cm.Arg
	if len(arg) == 0 {
		arg = nil
	}
	res, err := in.dyn.d.Call(ctx, cm.Method, arg)
	var re *RemoteError
	switch {
	case err == nil:
		return res, nil, false
	case errors.Is(err, ErrStop):
		return res, nil, true
	case errors.Is(err, ErrInstanceLost):
		in.stop(stopFailed, "instance lost: "+err.Error())
		return nil, lostCall, false
	case errors.As(err, &re):
		return nil, wireOf(re), false
	}
	return nil, &wireError{Type: fmt.Sprintf("%T", err), Lang: "go", Message: err.Error()}, false
}

// hasMethod reports whether the instance serves method.
func (in *instance) hasMethod(method string) bool {
	if in.dyn != nil {
		return in.dyn.methods[method]
	}
	return in.ms.methods[method] != nil
}
