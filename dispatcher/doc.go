// Package dispatcher places submitted jobs on a backend — fray's own workers
// (native, with gang placement) or an external Ray or Iris cluster — and
// mirrors the backend's status and logs back into JetStream, so a job handle
// looks the same whatever runs it.
//
//	d, err := dispatcher.New(nc, js, dispatcher.Options{Backends: []dispatcher.Backend{ray}})
//	err = d.Run(ctx) // serves until ctx ends
//
// Native placement is the pure function Place over the live workers'
// records; capacity is claimed with compare-and-set on each worker's
// allocation record, so several dispatchers may run against one cluster.
package dispatcher
