package actors

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/frayhq/fray/objects"
)

// Registry maps actor class names to constructors and validated method sets.
// It is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	classes map[string]*class
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{classes: map[string]*class{}} }

// class is a registered actor class.
type class struct {
	name    string
	methods *methodSet
	// ctor decodes the CBOR constructor argument and builds an instance.
	ctor func(ctx context.Context, arg []byte) (any, error)
}

// methodSet is the validated exported method set of an instance type.
type methodSet struct {
	typ     reflect.Type
	methods map[string]*method
}

type method struct {
	name string
	fn   reflect.Value // func(recv, ctx[, in]) ...
	in   reflect.Type  // nil: no argument
	out  reflect.Type  // nil: no result
}

var (
	ctxType = reflect.TypeFor[context.Context]()
	errType = reflect.TypeFor[error]()
)

// acceptedShapes is quoted in registration errors.
const acceptedShapes = "func(context.Context, In) (Out, error), func(context.Context) (Out, error) or func(context.Context, In) error"

// Register adds class with constructor ctor to reg. The actor's methods are
// *T's exported methods, each of the form func(context.Context, In) (Out,
// error), func(context.Context) (Out, error) or func(context.Context, In)
// error. It panics on a bad registration (meant for main); RegisterSafely
// returns the error instead.
func Register[T, A any](reg *Registry, className string, ctor func(context.Context, A) (*T, error)) {
	if err := RegisterSafely(reg, className, ctor); err != nil {
		panic(err)
	}
}

// RegisterSafely is Register returning the error: an empty or duplicate class
// name, a nil constructor, or an exported method of another shape (named in
// the error with the accepted shapes).
func RegisterSafely[T, A any](reg *Registry, className string, ctor func(context.Context, A) (*T, error)) error {
	if className == "" {
		return fmt.Errorf("actors: register: empty class name")
	}
	if ctor == nil {
		return fmt.Errorf("actors: register %s: nil constructor", className)
	}
	ms, err := methodsOf(reflect.TypeFor[*T]())
	if err != nil {
		return fmt.Errorf("actors: register %s: %w", className, err)
	}
	c := &class{name: className, methods: ms, ctor: func(ctx context.Context, raw []byte) (any, error) {
		var a A
		if len(raw) > 0 {
			if err := objects.Unmarshal(raw, &a); err != nil {
				return nil, fmt.Errorf("%w: constructor argument: %v", ErrBadArgument, err)
			}
		}
		t, err := ctor(ctx, a)
		if err != nil {
			return nil, err
		}
		if t == nil {
			return nil, fmt.Errorf("constructor returned a nil instance")
		}
		return t, nil
	}}
	return reg.add(c)
}

// add adds c, refusing a name already registered.
func (reg *Registry) add(c *class) error {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if _, dup := reg.classes[c.name]; dup {
		return fmt.Errorf("actors: register %s: class already registered", c.name)
	}
	reg.classes[c.name] = c
	return nil
}

// Classes lists the registered class names, sorted.
func (reg *Registry) Classes() []string {
	reg.mu.RLock()
	defer reg.mu.RUnlock()
	out := make([]string, 0, len(reg.classes))
	for n := range reg.classes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (reg *Registry) lookup(name string) (*class, bool) {
	reg.mu.RLock()
	defer reg.mu.RUnlock()
	c, ok := reg.classes[name]
	return c, ok
}

// methodsOf validates and indexes the exported methods of typ.
func methodsOf(typ reflect.Type) (*methodSet, error) {
	ms := &methodSet{typ: typ, methods: map[string]*method{}}
	var bad []string
	for i := range typ.NumMethod() {
		m := typ.Method(i)
		if !m.IsExported() {
			continue
		}
		md, ok := shapeOf(m)
		if !ok {
			bad = append(bad, fmt.Sprintf("%s has type %s", m.Name, strings.Replace(m.Type.String(), "func(", "func(recv ", 1)))
			continue
		}
		ms.methods[m.Name] = md
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%s: methods of unsupported shape: %s; accepted shapes are %s (or make the method unexported)",
			typ, strings.Join(bad, "; "), acceptedShapes)
	}
	return ms, nil
}

func shapeOf(m reflect.Method) (*method, bool) {
	t := m.Type // includes the receiver
	if t.IsVariadic() || t.NumIn() < 2 || t.NumIn() > 3 || t.In(1) != ctxType {
		return nil, false
	}
	md := &method{name: m.Name, fn: m.Func}
	if t.NumIn() == 3 {
		md.in = t.In(2)
	}
	switch {
	case t.NumOut() == 2 && t.Out(1) == errType:
		md.out = t.Out(0)
	case t.NumOut() == 1 && t.Out(0) == errType && md.in != nil:
	default:
		return nil, false
	}
	return md, true
}

// names lists the method names, sorted, for error messages.
func (ms *methodSet) names() []string {
	out := make([]string, 0, len(ms.methods))
	for n := range ms.methods {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
