package fray_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/internal/frayt"
)

// The FRAY_NATS_* credentials and TLS files name a remote cluster's
// secrets: a local (in-process) cluster, which has neither TLS nor
// authentication, ignores them instead of failing to connect.
func TestConnectLocalIgnoresTheCredentialsMeantForRemoteClusters(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("not used"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(fray.EnvTLSCA, ca)
	t.Setenv(fray.EnvToken, "remote-cluster-token")
	ctx := frayt.Context(t, 30*time.Second)
	c, err := fray.Connect(ctx, "")
	if err != nil {
		t.Fatalf("local connect with %s set: %v", fray.EnvTLSCA, err)
	}
	defer c.Close()
	got, err := fray.Run[string, string](ctx, c, "fray.echo", "hi").Get(ctx)
	if err != nil || got != "hi" {
		t.Fatalf("echo: %q %v", got, err)
	}
}
