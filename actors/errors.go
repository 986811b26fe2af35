package actors

import (
	"errors"
	"fmt"
)

var (
	// ErrExists is returned by a create of a live name without GetIfExists.
	ErrExists = errors.New("actors: actor already exists")
	// ErrNotFound means no actor has that name in that namespace.
	ErrNotFound = errors.New("actors: actor not found")
	// ErrActorUnavailable means the actor's instance died (or stopped) while
	// a call may have been running on it, or it cannot be reached before the
	// call's deadline.
	ErrActorUnavailable = errors.New("actors: actor unavailable")
	// ErrStop, returned by an actor method, ends the actor cleanly: its
	// record becomes a stopped tombstone before the reply is sent, the
	// caller sees a successful call, and later calls ErrActorUnavailable.
	ErrStop = errors.New("actors: stop actor")
	// ErrNoSuchMethod is the Type of a RemoteError for a call to a method the
	// class does not have; errors.Is(err, ErrNoSuchMethod) matches it.
	ErrNoSuchMethod = errors.New("actors: no such method")
	// ErrBadArgument is the Type of a RemoteError for a malformed call or an
	// argument that does not decode into the method's parameter type.
	ErrBadArgument = errors.New("actors: bad argument")
	// ErrClassMismatch is wrapped by a create of an existing name with
	// another class; the message names both classes.
	ErrClassMismatch = errors.New("actors: class mismatch")
	// ErrNoEligibleWorker means no live worker could host the actor within
	// the placement timeout.
	ErrNoEligibleWorker = errors.New("actors: no eligible worker")
	// ErrUnknownClass means the class is not registered where it was needed:
	// a create fails with it at once when the pool has live workers and
	// none offers the class, and a host refuses a placement with it.
	ErrUnknownClass = errors.New("actors: unknown actor class")
	// ErrNotBound means a handle decoded from CBOR or JSON has no client:
	// Bind it, or put a client in the context with ContextWithClient.
	ErrNotBound = errors.New("actors: handle not bound to a client")
	// ErrBadName reports an invalid actor name or namespace.
	ErrBadName = errors.New("actors: bad name")
)

// Error types carried in RemoteError.Type for failures fray itself detects.
const (
	TypeNoSuchMethod = "fray.NoSuchMethod"
	TypeBadArgument  = "fray.BadArgument"
	TypePanic        = "fray.Panic"
	TypeConstructor  = "fray.ConstructorError"
	TypeUnknownClass = "fray.UnknownClass"
)

// RemoteError is a method error, a recovered panic or a bad-input report from
// the actor's host. The actor survives it.
//
// A dynamic class (RegisterDynamic) returns one from its constructor or
// Call to describe an error of another language: Type, Message, Lang,
// Traceback and Exc travel to the caller.
type RemoteError struct {
	Method  string // method called ("" for a constructor)
	Message string // the error's message
	// Type is the error's type name in Lang (Go: %T, or one of the Type*
	// constants; Python: the qualified name, e.g. "builtins.KeyError"). An
	// opaque label to readers of another language.
	Type string
	Host string // id of the hosting worker
	// Lang is the language the error was raised in ("" or "go", "python").
	Lang string
	// Traceback is the formatted remote traceback, if any.
	Traceback string
	// Exc is the language's own encoding of the error (Python: pickled).
	Exc []byte
}

func (e *RemoteError) Error() string {
	what := "method " + e.Method
	if e.Method == "" {
		what = "constructor"
	}
	return fmt.Sprintf("actor %s on host %s failed (%s): %s", what, e.Host, e.Type, e.Message)
}

// Is lets errors.Is match ErrNoSuchMethod, ErrBadArgument and ErrUnknownClass.
func (e *RemoteError) Is(target error) bool {
	switch target {
	case ErrNoSuchMethod:
		return e.Type == TypeNoSuchMethod
	case ErrBadArgument:
		return e.Type == TypeBadArgument
	case ErrUnknownClass:
		return e.Type == TypeUnknownClass
	}
	return false
}
