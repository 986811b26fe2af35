package registry

import (
	"context"
	"fmt"
	"sort"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go/jetstream"
)

// List reads the records of the live workers, sorted by id. It costs one
// pass over FRAY_WORKERS (a consumer that lives for the read): for
// occasional readers (`fray workers`, Client.Workers, metrics), not for a
// loop in every process.
func List(ctx context.Context, js jetstream.JetStream) ([]broker.WorkerInfo, error) {
	kv, err := js.KeyValue(ctx, broker.BucketWorkers)
	if err != nil {
		return nil, fmt.Errorf("registry: bucket %s: %w", broker.BucketWorkers, err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("registry: read %s: %w", broker.BucketWorkers, broker.ExplainLimit(err))
	}
	defer func() { _ = w.Stop() }()
	var out []broker.WorkerInfo
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("registry: read %s: watch closed", broker.BucketWorkers)
			}
			if e == nil {
				sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
				return out, nil
			}
			var info broker.WorkerInfo
			if objects.Unmarshal(e.Value(), &info) == nil && info.ID != "" {
				out = append(out, info)
			}
		}
	}
}
