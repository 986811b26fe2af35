package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/worker"
)

// clusterFlag adds --nats, defaulting to $FRAY_CLUSTER_SPEC.
func clusterFlag(fs *flag.FlagSet) *string {
	return fs.String("nats", os.Getenv(fray.EnvClusterSpec), "cluster to use: nats://host:4222 (or a ray?/iris? spec where jobs allow it); defaults to $FRAY_CLUSTER_SPEC")
}

// errNoCluster is returned when a command needs a cluster and none is named.
var errNoCluster = errors.New("no cluster given: pass --nats nats://host:4222 or set FRAY_CLUSTER_SPEC (`fray up` starts a local cluster and prints its URL)")

// errLocalCluster is returned for the spec "local", which names a cluster
// only a library client can have.
var errLocalCluster = errors.New("cluster spec \"local\" starts an in-process cluster, which a CLI command cannot share; " +
	"run `fray up` and pass the URL it prints (--nats nats://127.0.0.1:4222, or FRAY_CLUSTER_SPEC=nats://127.0.0.1:4222)")

// connect connects the CLI to a running cluster. A local spec is refused:
// a fresh in-process cluster would have none of the user's work in it.
func connect(ctx context.Context, spec string) (*fray.Client, error) {
	sp, err := fray.ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	if sp.Kind == fray.SpecLocal {
		if strings.TrimSpace(spec) == "" {
			return nil, errNoCluster
		}
		return nil, errLocalCluster
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

// printBench prints a bench's result, as one JSON line with asJSON, or
// returns the bench's error.
func printBench(res fmt.Stringer, err error, asJSON bool) error {
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(res)
	}
	fmt.Println(res)
	return nil
}

// parseJSONArg decodes a --arg value ("" means null).
func parseJSONArg(s string) (any, error) {
	if s == "" {
		return nil, nil
	}
	v, err := worker.DecodeJSON([]byte(s)) // integers stay integers, for handlers taking an int
	if err != nil {
		return nil, fmt.Errorf("--arg %q is not JSON: %w", s, err)
	}
	return v, nil
}

// openJobs connects to spec and returns the handles of the jobs ids names.
func openJobs(ctx context.Context, spec string, ids []string) (*fray.Client, []*jobs.Handle, error) {
	c, err := connect(ctx, spec)
	if err != nil {
		return nil, nil, err
	}
	hs := make([]*jobs.Handle, len(ids))
	for i, id := range ids {
		if hs[i], err = c.Job(ctx, id); err != nil {
			c.Close()
			return nil, nil, err
		}
	}
	return c, hs, nil
}
