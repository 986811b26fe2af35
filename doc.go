// Package fray is the client of fray, a distributed task queue and job
// system on NATS JetStream for ML workloads. One Client gives tasks
// (Put/Get objects, Run registered functions on workers, Wait for any N of
// many futures), jobs (submit programs with resources, watch, tail, stop)
// and named actors.
//
// Connect reads a cluster spec (FRAY_CLUSTER_SPEC): unset or "local" starts
// an in-process broker and worker, so a program runs with no setup;
// "nats://host:4222" joins a running cluster.
//
//	c, err := fray.Connect(ctx, os.Getenv("FRAY_CLUSTER_SPEC"))
//	defer c.Close()
//	fut := fray.Run[[2]int, int](ctx, c, "add", [2]int{1, 2})
//	sum, err := fut.Get(ctx)
//
// Workers register handlers with tasks.Register and run worker.New(...).Run
// (or the fray-worker daemon).
package fray
