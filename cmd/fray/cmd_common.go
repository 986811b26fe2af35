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
	"github.com/frayhq/fray/jobs"
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

// openJob parses a job command's flags and its ID argument (before or
// after the flags), connects to *spec (read after parsing, so --nats
// counts), and returns the job's handle. usage is printed when no id is
// given.
func openJob(ctx context.Context, fs *flag.FlagSet, args []string, spec *string, usage string) (*fray.Client, *jobs.Handle, error) {
	id, rest := splitLeadingArg(args)
	if err := parse(fs, rest); err != nil {
		return nil, nil, err
	}
	if id == "" && fs.NArg() > 0 {
		id = fs.Arg(0)
	}
	if id == "" {
		fmt.Fprintln(os.Stderr, usage)
		return nil, nil, errUsage
	}
	c, err := connect(ctx, *spec)
	if err != nil {
		return nil, nil, err
	}
	h, err := c.Job(ctx, id)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, h, nil
}
