// Package worker is the fray worker daemon as a library: it registers the
// worker in the FRAY_WORKERS registry under a lease, serves tasks of one pool
// with a tasks.Executor, runs plugins (the actor host, the job runner) beside
// it, and drains on shutdown.
//
//	reg := tasks.NewRegistry()
//	worker.RegisterBuiltins(reg)
//	tasks.Register(reg, "embed", embed)
//	w, err := worker.New(nc, worker.Options{Pool: "gpu", Concurrency: 8, Registry: reg})
//	err = w.Run(ctx) // until ctx ends, then drain
package worker
