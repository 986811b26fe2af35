// Package registry is fray's worker registry seen from outside the worker:
// who is alive, and what each pool serves.
//
// A worker's record lives in KV FRAY_WORKERS under a lease (see
// broker.Lease) that it renews every lease period. Those renewals are for
// the liveness deciders only (the job dispatcher and the Maintainer here):
// they are the only processes that watch the bucket.
// Everybody else (producers refusing an unknown function, workers handing
// a task to a peer, plugins) reads the pool directory: one small record
// per pool in KV FRAY_POOLS (broker.PoolDirectory), which the Maintainer
// rewrites only when a pool's membership or its function or class set
// changes, and never more often than once per MaintainerOptions.Every.
//
// A View reads the directory with direct gets and hears its changes on
// one core subscription: it costs the stream no consumer, whatever the
// number of processes. Shared returns one View per NATS connection, so a
// worker's client, executor and plugins share it. An idle fleet of N
// workers therefore costs the broker N renewals per lease period, each
// delivered to a fixed number of deciders, instead of N² deliveries.
//
// List reads every live worker's full record on demand (`fray workers`,
// Client.Workers, metrics).
package registry
