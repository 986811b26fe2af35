package actors

import "context"

type selfKey struct{}

// Self describes the actor whose method (or constructor) is running.
type Self struct {
	Handle *Handle // the actor's own handle, bound to the host's client
	Group  string  // group name, "" outside a group
	Index  int     // index in the group, -1 outside a group
	Epoch  uint64  // instance number: 1, then +1 per restart
	Host   string  // id of the hosting worker or process
	// MaxConcurrency is how many calls the instance runs at once.
	MaxConcurrency int
}

// Current returns the running actor's identity; ok is false outside an
// actor's constructor or method.
func Current(ctx context.Context) (Self, bool) {
	in, ok := ctx.Value(selfKey{}).(*instance)
	if !ok {
		return Self{Index: -1}, false
	}
	h := &Handle{ns: in.rec.Namespace, name: in.rec.Name, class: in.rec.Class, c: in.client}
	return Self{Handle: h, Group: in.rec.Group, Index: in.rec.Index, Epoch: in.epoch, Host: in.hostID,
		MaxConcurrency: max(1, in.rec.MaxConcurrency)}, true
}

// Fail marks the running actor as failed with err: once the current method
// returns (its caller gets its result as usual), the instance stops and the
// supervisor applies the restart policy (MaxRestarts). It returns err, so a
// method can end with `return actors.Fail(ctx, err)`. Outside an actor it
// only returns err.
func Fail(ctx context.Context, err error) error {
	if in, ok := ctx.Value(selfKey{}).(*instance); ok && err != nil {
		in.failErr.CompareAndSwap(nil, &err)
	}
	return err
}
