package fray_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// authBroker starts a broker configured by the nats-server config conf and
// provisions it as user/password.
func authBroker(t *testing.T, conf, user, password string) *broker.Server {
	t.Helper()
	ctx := frayt.Context(t, 30*time.Second)
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := broker.Start(ctx, broker.Options{Port: -1, StoreDir: t.TempDir(), ConfigFile: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(user, password))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := broker.Provision(ctx, js, nc.ConnectedServerVersion(), broker.ProvisionOptions{}); err != nil {
		t.Fatal(err)
	}
	return srv
}

func TestConnectWithUserPasswordToABrokerConfiguredByFile(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	srv := authBroker(t, `authorization { users = [ { user: trainer, password: s3cret } ] }`, "trainer", "s3cret")

	if _, err := fray.Connect(ctx, srv.ClientURL()); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("connect without credentials: %v, want an authorization error", err)
	}
	c, err := fray.Connect(ctx, srv.ClientURL(), fray.WithUserPass("trainer", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	// The same from the environment, as the CLI and workers read it.
	t.Setenv(fray.EnvUser, "trainer")
	t.Setenv(fray.EnvPassword, "s3cret")
	c, err = fray.Connect(ctx, srv.ClientURL())
	if err != nil {
		t.Fatalf("credentials from the environment: %v", err)
	}
	c.Close()
}

// An account that may not subscribe where stored results arrive gets an
// error naming the subject at Connect, not futures that never resolve.
func TestConnectNamesAResultsSubscriptionTheAccountMayNotMake(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	srv := authBroker(t, `authorization { users = [
		{ user: admin, password: a }
		{ user: trainer, password: t, permissions: { subscribe: { deny: ["fray.stored.>"] } } }
	] }`, "admin", "a")
	_, err := fray.Connect(ctx, srv.ClientURL(), fray.WithUserPass("trainer", "t"))
	if err == nil || !strings.Contains(err.Error(), "may not subscribe to fray.stored.") {
		t.Fatalf("connect: %v, want an error naming the fray.stored subscription", err)
	}
	c, err := fray.Connect(ctx, srv.ClientURL(), fray.WithUserPass("admin", "a"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// A process connecting to a broker it runs itself (fray up) ignores the
// FRAY_NATS_* credentials and TLS files meant for other clusters.
func TestWithoutEnvCredentialsIgnoresFRAYNATSVariables(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	srv := frayt.Server(t)
	t.Setenv(fray.EnvTLSCA, filepath.Join(t.TempDir(), "no-such-ca.pem"))
	if c, err := fray.Connect(ctx, srv.ClientURL()); err == nil {
		c.Close()
		t.Fatal("connect with an unreadable FRAY_NATS_CA succeeded: the variable was not applied")
	}
	c, err := fray.Connect(ctx, srv.ClientURL(), fray.WithoutEnvCredentials())
	if err != nil {
		t.Fatalf("connect without the environment: %v", err)
	}
	c.Close()
}
