package langrt

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/objects"
)

// RegisterActors registers every actor class the runtime serves in reg as
// a dynamic class: each instance is a process of its own.
func (rt *Runtime) RegisterActors(reg *actors.Registry) error {
	for _, c := range rt.hello.Classes {
		if err := reg.RegisterDynamic(c.Name, rt.constructor(c.Name)); err != nil {
			return err
		}
	}
	return nil
}

func (rt *Runtime) constructor(class string) actors.DynamicConstructor {
	return func(ctx context.Context, arg []byte) (actors.DynamicInstance, error) {
		p, err := rt.startActorProc(ctx)
		if err != nil {
			return nil, err
		}
		f := &Frame{T: FrameNew, Fn: class, Arg: arg, Actor: &ActorInfo{Class: class, Index: -1, MaxConcurrency: 1}}
		if self, ok := actors.Current(ctx); ok {
			ns, name := self.Handle.Namespace(), self.Handle.Name()
			f.Actor = &ActorInfo{Namespace: ns, Name: name, Class: class, Group: self.Group, Index: self.Index,
				Epoch: self.Epoch, Host: self.Host, MaxConcurrency: self.MaxConcurrency}
		}
		x := &actorProc{rt: rt, p: p, label: f.Actor.Namespace + "/" + f.Actor.Name}
		r, err := p.request(ctx, f, x.label+" constructor")
		if err == nil && r.T == FrameError {
			err = rt.actorError(r.Err)
		}
		if err != nil {
			x.Close()
			return nil, err
		}
		x.methods = r.Methods
		return x, nil
	}
}

// actorProc is one actor instance: a process hosting it.
type actorProc struct {
	rt      *Runtime
	p       *proc
	label   string
	methods []string
}

func (x *actorProc) Methods() []string { return slices.Clone(x.methods) }

func (x *actorProc) Call(ctx context.Context, method string, arg []byte) (objects.RawMessage, error) {
	r, err := x.p.request(ctx, &Frame{T: FrameCall, Fn: method, Arg: arg}, x.label+"."+method)
	switch {
	case errors.Is(err, ErrCrashed):
		return nil, fmt.Errorf("%w: %w", actors.ErrInstanceLost, err)
	case err != nil:
		return nil, err // ctx ended; the code runs on
	case r.T == FrameError:
		return nil, x.rt.actorError(r.Err)
	case r.Stop:
		return objects.RawMessage(r.Value), actors.ErrStop
	}
	return objects.RawMessage(r.Value), nil
}

func (x *actorProc) Done() <-chan struct{} { return x.p.dead }

func (x *actorProc) Err() error {
	select {
	case <-x.p.dead:
		return x.p.crashErr()
	default:
		return nil
	}
}

func (x *actorProc) Close() {
	x.p.kill()
	<-x.p.dead
	x.rt.forgetActorProc(x.p)
}

func (rt *Runtime) actorError(e *LangError) error {
	if e == nil {
		e = &LangError{Message: "error frame without an error"}
	}
	return &actors.RemoteError{Lang: rt.hello.Lang, Type: e.Type, Message: e.Message, Traceback: e.Traceback, Exc: e.Exc}
}
