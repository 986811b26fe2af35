// Package clusterview keeps a live, read-only picture of a fray cluster in
// memory, from the same JetStream buckets and streams the CLI reads: job
// records (KV FRAY_JOB_STATE), actor records (KV FRAY_ACTORS), live workers
// (the registry, through tasks.WatchWorkers), per-pool queue depth (the
// pool consumers of FRAY_TASKS), stream sizes, and recent task failures
// (results republished on fray.stored.>).
//
// Watches keep records current as they change; consumer and stream infos
// are polled on the view's own goroutine every Refresh. Readers (the
// Prometheus metrics, the web dashboard) take copies under a read lock and
// never touch the network, so a slow scraper or browser cannot hold up the
// cluster, and the cluster's work never waits on a reader.
//
//	v := clusterview.New(clusterview.Options{})
//	go v.Run(ctx, nc, js)
//	<-v.Ready()
//	snap := v.Snapshot()
package clusterview
