package worker

import (
	"context"

	"github.com/frayhq/fray/broker"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Plugin is a service a worker runs beside its task executor: the actor host
// and the job runner are plugins. Capability packages satisfy it without
// importing this package.
type Plugin interface {
	// Describe adds what the plugin offers (actor classes, resources) to the
	// worker's registry record before it is first published.
	Describe(info *broker.WorkerInfo)
	// Run serves until ctx ends (the worker is stopping) and returns nil
	// then. self is the worker's record as published; treat it as read-only.
	Run(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, self *broker.WorkerInfo) error
}
