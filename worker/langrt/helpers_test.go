package langrt_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/tasks"
	"github.com/frayhq/fray/worker/langrt"
)

// options are the Options of a Python runtime importing the fixtures.
func options(t testing.TB, procs int, imports ...string) (langrt.Options, *frayt.SyncBuffer) {
	t.Helper()
	py, paths := frayt.Python(t)
	logs := &frayt.SyncBuffer{}
	return langrt.Options{
		Command: []string{py, "-m", "frayhq.runtime"},
		Procs:   procs,
		Imports: imports,
		Paths:   paths[1:],
		Env:     frayt.PythonEnv(paths[:1]),
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, logs
}

// start starts a runtime importing rtfixtures, closed when the test ends.
func start(t testing.TB, procs int) (*langrt.Runtime, *tasks.Registry, *frayt.SyncBuffer) {
	t.Helper()
	o, logs := options(t, procs, "rtfixtures")
	rt, err := langrt.Start(frayt.Context(t, 2*time.Minute), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	reg := tasks.NewRegistry()
	if err := rt.RegisterTasks(reg); err != nil {
		t.Fatal(err)
	}
	return rt, reg, logs
}

// run calls fn's handler with arg (encoded) and returns its raw result.
func run(ctx context.Context, t testing.TB, reg *tasks.Registry, fn string, arg any) (any, error) {
	t.Helper()
	h, ok := reg.Lookup(fn)
	if !ok {
		t.Fatalf("%s not registered; have %v", fn, reg.Names())
	}
	var raw []byte
	if arg != nil {
		var err error
		if raw, err = objectsMarshal(arg); err != nil {
			t.Fatal(err)
		}
	}
	return h(ctx, raw)
}
