// Package ray is the dispatcher backend that runs fray jobs on a Ray cluster
// through Ray's Jobs REST API (the dashboard's /api/jobs/ endpoints).
//
//	b, err := ray.New(ray.Options{Address: "http://head:8265"})
//	id, err := b.Submit(ctx, "/team/train", run, req)
//	st, err := b.Status(ctx, id)
//	lines, next, err := b.Logs(ctx, id, 0)
//
// A job's argv becomes Ray's shell entrypoint (each argument shell-quoted),
// its resources become entrypoint_num_cpus / entrypoint_num_gpus /
// entrypoint_memory / entrypoint_resources, its environment becomes the
// runtime_env. What Ray cannot honour (Func entrypoints, several replicas,
// regions, attribute constraints, retries, …) is refused by Validate with an
// error wrapping dispatcher.ErrUnsupported.
package ray
