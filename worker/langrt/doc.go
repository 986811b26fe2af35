// Package langrt runs task functions and actor classes written in another
// language (Python first) in persistent runtime processes, supervised by a
// fray worker. The worker keeps every JetStream concern (pulling for free
// slots, heartbeats, leases, hand-on, drain, barriers, placement); a runtime
// process only runs code. The two talk over a pair of pipes with
// length-prefixed CBOR frames, documented in PROTOCOL.md ("Language
// runtimes") so that another language can add a runtime.
//
// A worker starts the runtime, then registers what it offers with the
// capability packages' generic extension points:
//
//	rt, err := langrt.Start(ctx, langrt.Options{Command: []string{"python3", "-m", "frayhq.runtime"}, Procs: 4, Imports: []string{"mytasks"}})
//	err = rt.RegisterTasks(taskRegistry)   // tasks.Registry handlers returning raw CBOR
//	err = rt.RegisterActors(actorRegistry) // actors.Registry dynamic classes
//	defer rt.Close()
//
// Tasks run on a pool of Procs processes, one task at a time each; every
// actor instance gets a process of its own, so its death is the actor
// failing.
package langrt
