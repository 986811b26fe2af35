package broker

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// LayoutPools is the first layout with the pool directory (FRAY_POOLS).
const LayoutPools = 3

// RequireLayout returns an error wrapping ErrLayoutTooOld, saying what to
// upgrade, when the cluster was provisioned with a layout older than
// version, which what (a bucket, say) needs. It reads the layout from
// FRAY_TASKS's metadata, which Provision brings up to date before it
// creates any bucket, so a cluster that a current fray-broker is still
// provisioning does not count as old. A layout new enough yields nil; a
// failure to read it (FRAY_TASKS missing: nothing provisioned yet) is
// returned as it is.
func RequireLayout(ctx context.Context, js jetstream.JetStream, version int, what string) error {
	s, err := js.Stream(ctx, StreamTasks)
	if err != nil {
		return fmt.Errorf("broker: read the layout of stream %s: %w", StreamTasks, err)
	}
	v, _ := strconv.Atoi(s.CachedInfo().Config.Metadata[MetadataLayoutKey])
	if v >= version {
		return nil
	}
	return fmt.Errorf("%w: %s needs layout %d, and stream %s has layout %d: "+
		"the broker runs an older fray; upgrade fray-broker (on every node of a cluster) to this fray version, "+
		"which provisions the layout when it starts", ErrLayoutTooOld, what, version, StreamTasks, v)
}
