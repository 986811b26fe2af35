package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/frayhq/fray/auth"
)

func init() {
	register(command{name: "auth", summary: "roles and tenants: fray auth init --out DIR writes a nats-server config for fray-broker --config and credentials for the roles admin, producer, worker (one user per worker) and viewer", run: runAuth})
}

func runAuth(ctx context.Context, args []string) error {
	fs := newFlags("auth", "init --out DIR [flags]")
	out := fs.String("out", "", "directory to write nats.conf and one <tenant>-<role>.env per user into (made if missing)")
	var tenants, producers, workers listFlag
	fs.Var(&tenants, "tenant", "a tenant: a NATS account that is a fray cluster of its own (repeatable; default one, \"fray\"); users are <tenant>-<role>")
	fs.Var(&producers, "producer", "a producer user NAME in every tenant, reading only its own results (repeatable; default one, \"producer\")")
	fs.Var(&workers, "worker", "a worker NAME[@POOL] in every tenant: user <tenant>-worker-NAME, whose credentials fix worker id NAME and its pool (default \"default\"); it may write only its own registry entry, pull only POOL's tasks and report only on the jobs placed on it (repeatable)")
	nWorkers := fs.Int("workers", 0, "N more workers named w1..wN, of the default pool (default 1 when no --worker is given)")
	tlsCert := fs.String("tls-cert", "", "server certificate: clients must then connect with TLS")
	tlsKey := fs.String("tls-key", "", "the server certificate's key (with --tls-cert)")
	tlsCA := fs.String("tls-ca", "", "CA that signed the server certificate, written into each .env file as FRAY_NATS_CA")
	pos, err := parsePositional(fs, args, 1, 1, "subcommand: init")
	if err != nil {
		return err
	}
	if pos[0] != "init" {
		return usagef(fs, "unknown subcommand %q; want fray auth init --out DIR", pos[0])
	}
	if *out == "" {
		return usagef(fs, "--out DIR is required")
	}
	if *nWorkers < 0 {
		return usagef(fs, "--workers %d: want 0 or more", *nWorkers)
	}
	for i := 1; i <= *nWorkers; i++ {
		workers = append(workers, fmt.Sprintf("w%d", i))
	}
	o := auth.Options{Dir: *out, TLSCert: *tlsCert, TLSKey: *tlsKey, TLSCA: *tlsCA}
	for _, t := range tenants {
		o.Tenants = append(o.Tenants, auth.Tenant{Name: t, Producers: producers, Workers: workers})
	}
	if len(o.Tenants) == 0 {
		o.Tenants = []auth.Tenant{{Producers: producers, Workers: workers}}
	}
	res, err := auth.Init(o)
	if errors.Is(err, auth.ErrBadOptions) {
		return usagef(fs, "%s", strings.TrimPrefix(err.Error(), auth.ErrBadOptions.Error()+": "))
	}
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s\n", res.ConfigFile)
	for _, u := range res.Users {
		if u.WorkerID != "" {
			fmt.Printf("wrote %s (user %s, role %s, worker id %s, tenant %s)\n", u.EnvFile, u.Name, u.Role, u.WorkerID, u.Tenant)
			continue
		}
		fmt.Printf("wrote %s (user %s, role %s, tenant %s)\n", u.EnvFile, u.Name, u.Role, u.Tenant)
	}
	first := res.Users[0]
	fmt.Printf("\nstart the broker with its admin credentials:\n  (set -a; . %s; exec fray-broker --config %s)\n", first.EnvFile, res.ConfigFile)
	for _, u := range res.Users {
		if u.WorkerID != "" {
			fmt.Printf("and each worker with its own (its id comes from them), e.g.:\n  (set -a; . %s; exec fray-worker --nats nats://BROKER:4222)\n", u.EnvFile)
			break
		}
	}
	return nil
}
