package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/cluster"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/tasks"
	"github.com/frayhq/fray/worker"
)

// Mistakes in the task commands' flags exit 2 naming the flag, before
// anything connects or starts.
func TestTaskCommandFlagMistakesExitTwoNamingTheFlag(t *testing.T) {
	t.Setenv("FRAY_CLUSTER_SPEC", "nats://127.0.0.1:1") // nothing may get as far as connecting
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"run", "fray.echo", "--pool", "gpu.a100"}, `fray run: --pool "gpu.a100"`},
		{[]string{"run", "fray.echo", "--pool", ""}, `fray run: --pool ""`},
		{[]string{"up", "--workers", "-1"}, "fray up: --workers -1"},
		{[]string{"up", "--concurrency", "-2"}, "fray up: --concurrency -2"},
		{[]string{"up", "--port", "70000"}, "fray up: --port 70000"},
		{[]string{"bench", "tasks", "--n", "0"}, "fray bench tasks: --n 0"},
		{[]string{"bench", "tasks", "--concurrency", "0"}, "fray bench tasks: --concurrency 0"},
		{[]string{"bench", "tasks", "--payload", "-1"}, "fray bench tasks: --payload -1"},
		{[]string{"bench", "tasks", "--sequential", "-1"}, "fray bench tasks: --sequential -1"},
		{[]string{"bench", "tasks", "--rounds", "0"}, "fray bench tasks: --rounds 0: want at least 1"},
		{[]string{"bench", "tasks", "--rounds", "3"}, "fray bench tasks: --rounds 3: rounds pair fray with the same-work bare path: add --baseline"},
	}
	for _, c := range cases {
		_, stderr, code := cli(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("fray %q: exit %d, stderr %q; want exit 2 saying %q", c.args, code, stderr, c.want)
		}
	}
}

// Tasks and workers live in a fray cluster: a ray or iris spec that names
// none (no nats=URL) is refused, not answered from a throwaway in-process
// cluster.
func TestTaskCommandsRefuseASpecThatNamesNoFrayCluster(t *testing.T) {
	for _, spec := range []string{"ray?address=http://127.0.0.1:1", "iris?controller=http://127.0.0.1:1"} {
		for _, args := range [][]string{
			{"run", "fray.echo", "--arg", "1", "--wait"},
			{"result", "a.b"},
			{"workers"},
		} {
			_, stderr, code := cli(t, append(args, "--nats", spec)...)
			if code != 2 || !strings.Contains(stderr, "names no fray cluster") {
				t.Errorf("fray %q --nats %s: exit %d, stderr %q; want exit 2 saying it names no fray cluster", args, spec, code, stderr)
			}
		}
	}
}

// A JSON integer given to fray run reaches a Go handler as an integer: a
// function taking an int (or a struct with int fields) accepts --arg 7, and
// integers beyond float64's 2^53 keep every digit.
func TestRunPassesJSONIntegersAsIntegersAndPrintsAnyResult(t *testing.T) {
	reg := tasks.NewRegistry()
	if err := worker.RegisterBuiltins(reg); err != nil {
		t.Fatal(err)
	}
	tasks.Register(reg, "square", func(_ context.Context, n int) (int, error) { return n * n, nil })
	type rect struct{ W, H int }
	tasks.Register(reg, "area", func(_ context.Context, r rect) (int, error) { return r.W * r.H, nil })
	tasks.Register(reg, "squares", func(_ context.Context, n int) (map[int]int, error) {
		m := map[int]int{}
		for i := 1; i <= n; i++ {
			m[i] = i * i
		}
		return m, nil
	})
	l, err := cluster.StartLocal(frayt.Context(t, time.Minute), cluster.LocalOptions{
		Broker: broker.Options{StoreDir: t.TempDir()}, Workers: 1, Worker: worker.Options{Registry: reg}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop() })
	for _, c := range []struct{ fn, arg, want string }{
		{"square", "7", "49"},
		{"area", `{"W": 2, "H": 3}`, "6"},
		{"fray.echo", "9007199254740993", "9007199254740993"},
		{"fray.echo", `[1, 2.5, "x"]`, `[1,2.5,"x"]`},
		// A result keyed by integers prints with the keys as JSON text.
		{"squares", "3", `{"1":1,"2":4,"3":9}`},
		{"fray.echo", `{"a": [{"b": null}]}`, `{"a":[{"b":null}]}`},
	} {
		out, stderr, code := cli(t, "run", c.fn, "--arg", c.arg, "--wait", "--nats", l.URL())
		if code != 0 || strings.TrimSpace(out) != c.want {
			t.Errorf("fray run %s --arg %s: exit %d, stdout %q, stderr %q; want %s", c.fn, c.arg, code, out, stderr, c.want)
		}
	}
}
