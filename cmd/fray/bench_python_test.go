package main

import (
	"encoding/json"
	"testing"

	"github.com/frayhq/fray/internal/frayt"
)

func TestBenchActorsCallsAPythonActor(t *testing.T) {
	py, paths := frayt.Python(t)
	stdout, stderr, code := cli(t, "bench", "actors", "--runtime", "python", "--python", py, "--python-path", paths[0],
		"--calls", "300", "--concurrency", "8", "--rounds", "1", "--sequential", "30", "--json")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	var res actorsBench
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.CallsPerS <= 0 || res.P50MS <= 0 {
		t.Fatalf("result %q (%v): want calls_per_s and p50_ms", stdout, err)
	}
}
