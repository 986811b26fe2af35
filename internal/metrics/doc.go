// Package metrics exposes fray's Prometheus metrics: the cluster's (served
// by fray-broker --metrics-addr, from a clusterview.View and the task
// subjects) and a worker's (served by fray-worker --metrics-addr, from the
// hooks of its task executor, registry lease and job runner). The
// capability packages (tasks, actors, jobs) know nothing of Prometheus:
// they offer small observer hooks, and this package implements them with
// atomic counters.
//
// Every label value comes from a bounded set (pools, function names,
// error kinds, states, stream names, backend names; a set past its bound
// folds into "other"); no metric is labelled by a task, job or actor id.
// The metric list is in the README ("Metrics").
//
//	reg := metrics.NewRegistry()
//	m := metrics.NewBroker(reg, view)
//	go m.Run(ctx, nc)
//	metrics.Serve(ctx, listener, reg)
package metrics
