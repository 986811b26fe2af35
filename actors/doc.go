// Package actors implements fray's named actors: long-lived objects hosted by
// one worker, found by name from any process, called method by method, kept
// alive by a lease in the FRAY_ACTORS bucket and restarted elsewhere by the
// Supervisor when their host dies.
//
// Worker side: register classes, then run a Host as a worker plugin.
//
//	reg := actors.NewRegistry()
//	actors.Register(reg, "demo.Counter", func(ctx context.Context, start int) (*Counter, error) {
//		return &Counter{n: start}, nil
//	})
//	host := actors.NewHost(reg, actors.HostOptions{})
//
// Caller side (usually through fray.Client):
//
//	h, err := client.CreateActor(ctx, "demo.Counter", "counter", 0, actors.GetIfExists())
//	var n int
//	err = h.Call(ctx, "Add", 1).Get(ctx, &n)
//
// The wire protocol (registry record, call and reply records, subjects) is in
// docs/protocol/actors.md.
package actors
