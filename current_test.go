package fray_test

import (
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/internal/frayt"
)

func TestCurrentConnectsOnceFromTheEnvironment(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	local, err := fray.Connect(ctx, "local")
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	t.Setenv(fray.EnvClusterSpec, local.URL())
	fray.ResetCurrent()
	t.Cleanup(fray.ResetCurrent)
	c1, err := fray.Current()
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := fray.Current()
	if c1 != c2 {
		t.Fatal("Current returned two clients")
	}
	got, err := fray.Run[string, string](ctx, c1, "fray.echo", "current").Get(ctx)
	if err != nil || got != "current" {
		t.Fatalf("echo through Current: %q %v", got, err)
	}
	// FromContext falls back to Current, and prefers a client in the context.
	if c, _ := fray.FromContext(ctx); c != c1 {
		t.Fatal("FromContext without a client is not Current")
	}
	if c, _ := fray.FromContext(fray.WithClient(ctx, local)); c != local {
		t.Fatal("FromContext ignores the client in the context")
	}
}
