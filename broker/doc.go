// Package broker runs nats-server with JetStream inside a fray process and
// provisions every stream, key-value bucket and object bucket fray uses.
//
// A single-node broker for a laptop or a test:
//
//	srv, err := broker.Start(ctx, broker.Options{StoreDir: dir, Port: -1})
//	defer srv.Shutdown()
//	nc, _ := nats.Connect(srv.ClientURL())
//	js, _ := jetstream.New(nc)
//	err = broker.Provision(ctx, js, broker.ProvisionOptions{})
//
// Provision is idempotent: every fray process that connects may call it,
// every node of a forming cluster at once (it waits, saying why through
// ProvisionOptions.OnWait, for a meta leader, peers and stream leaders),
// and an existing layout is updated in place only where it differs.
//
// A publish or subscription the server's permissions refuse is reported by
// nats.go only to the connection's async error handler; OnPermissionDenied,
// GuardPublish and Subscribe turn it into a *PermissionError for the call
// that caused it. The names of the streams and
// buckets are part of fray's wire protocol (see PROTOCOL.md).
package broker
