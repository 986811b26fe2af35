package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/frayhq/fray"
)

// clusterFlag adds --nats, defaulting to $FRAY_CLUSTER_SPEC.
func clusterFlag(fs *flag.FlagSet) *string {
	return fs.String("nats", os.Getenv(fray.EnvClusterSpec), "cluster to use: nats://host:4222 (or a ray?/iris? spec where jobs allow it); defaults to $FRAY_CLUSTER_SPEC")
}

// errNoCluster is returned when a command needs a cluster and none is named.
var errNoCluster = errors.New("no cluster given: pass --nats nats://host:4222 or set FRAY_CLUSTER_SPEC (`fray up` starts a local cluster and prints its URL)")

// connect connects the CLI to a running cluster. A local spec is refused:
// a fresh in-process cluster would have none of the user's work in it.
func connect(ctx context.Context, spec string) (*fray.Client, error) {
	sp, err := fray.ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	if sp.Kind == fray.SpecLocal {
		return nil, errNoCluster
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return fray.Connect(cctx, spec)
}

// printJSON writes v as one line of JSON.
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	return enc.Encode(v)
}

// parseJSONArg decodes a --arg value ("" means null).
func parseJSONArg(s string) (any, error) {
	if s == "" {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("--arg %q is not JSON: %w", s, err)
	}
	return v, nil
}
