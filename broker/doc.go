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
// Provision is idempotent: every fray process that connects may call it, and
// an existing layout is updated in place. The names of the streams and
// buckets are part of fray's wire protocol (see PROTOCOL.md).
package broker
