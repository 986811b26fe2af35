package broker

import (
	"context"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// kvKey names a bucket handle of one connection.
type kvKey struct {
	nc     *nats.Conn
	bucket string
}

var (
	kvMu    sync.Mutex
	kvCache = map[kvKey]jetstream.KeyValue{}
)

// KeyValue returns a handle on bucket for js's connection. The bucket is
// looked up (a JetStream stream-info request) once per connection: the
// parts of one process that share a connection (a worker's client,
// executor, lease and plugins) share the handle, and a lease taken again
// after a broker outage asks nothing. Thousands of workers starting
// together would otherwise queue tens of thousands of info requests,
// past nats-server's limit of 10,000 pending.
func KeyValue(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	nc := js.Conn()
	k := kvKey{nc, bucket}
	kvMu.Lock()
	kv := kvCache[k]
	kvMu.Unlock()
	if kv != nil {
		return kv, nil
	}
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, err
	}
	kvMu.Lock()
	defer kvMu.Unlock()
	for ck := range kvCache {
		if ck.nc.IsClosed() {
			delete(kvCache, ck) // connections closed since: forget them
		}
	}
	if nc.IsClosed() {
		return kv, nil
	}
	if cur := kvCache[k]; cur != nil {
		return cur, nil
	}
	kvCache[k] = kv
	return kv, nil
}
