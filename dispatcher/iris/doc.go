// Package iris is the dispatcher backend that runs fray jobs on an Iris
// cluster (marin-community/marin's lib/iris) through its controller's Connect
// RPC API, iris.cluster.ControllerService, and reads their logs from the
// finelog LogService the controller proxies.
//
//	b, err := iris.New(iris.Options{Controller: "http://controller:10000"})
//	id, err := b.Submit(ctx, "/team/train", run, req)   // id = "/fray/team.train"
//	st, err := b.Status(ctx, id)
//	lines, next, err := b.Logs(ctx, id, 0)
//
// The wire messages are generated from proto/, a subset of Iris's own protos
// with the same names and numbers; regenerate with `go generate`.
package iris
