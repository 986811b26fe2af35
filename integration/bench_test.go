package integration

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// benchLines runs `fray bench ARGS --json` and decodes its JSON lines.
func benchLines(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	stdout, stderr, code := runFray(t, []string{"FRAY_CLUSTER_SPEC="}, 4*time.Minute, append(append([]string{"bench"}, args...), "--json")...)
	if code != 0 {
		t.Fatalf("fray bench %s: exit %d\nstderr:\n%s", strings.Join(args, " "), code, stderr)
	}
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("fray bench %s: line %q is not JSON: %v", strings.Join(args, " "), l, err)
		}
		out = append(out, m)
	}
	return out
}

// The process mode runs the real binaries (fray-broker, fray-worker and
// producer processes, found beside fray) and reports one line per pair,
// counting every task asked for.
func TestBenchTasksAcrossProcessesPrintsOneLinePerPair(t *testing.T) {
	// Enough tasks that the broker's CPU time, which /proc counts in
	// ticks of 10 ms, is more than a tick (about 60 µs a task).
	lines := benchLines(t, "tasks", "--producers", "1", "--workers", "1", "--n", "3000")
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1: %v", len(lines), lines)
	}
	l := lines[0]
	if l["producers"] != 1.0 || l["workers"] != 1.0 || l["n"] != 3000.0 {
		t.Fatalf("line %v: want producers 1, workers 1, n 3000", l)
	}
	for _, k := range []string{"tasks_per_s", "p50_ms", "p99_ms", "broker_cpu_us_per_task", "producers_cpu_us_per_task"} {
		if v, ok := l[k].(float64); !ok || v <= 0 {
			t.Errorf("%s = %v, want a positive number", k, l[k])
		}
	}
	lines = benchLines(t, "tasks", "--producers", "1,2", "--workers", "1", "--n", "100")
	if len(lines) != 2 || lines[0]["producers"] != 1.0 || lines[1]["producers"] != 2.0 {
		t.Fatalf("--producers 1,2: lines %v, want one per producer count", lines)
	}
}

// --cluster 3 runs fray and the bare same-work path on a three-node
// cluster with three replicas.
func TestBenchTasksOnAReplicatedCluster(t *testing.T) {
	lines := benchLines(t, "tasks", "--cluster", "3", "--n", "200", "--sequential", "20", "--baseline")
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1: %v", len(lines), lines)
	}
	l := lines[0]
	if l["n"] != 200.0 || l["brokers"] != 3.0 || l["replicas"] != 3.0 {
		t.Fatalf("line %v: want n 200 on 3 brokers with 3 replicas", l)
	}
	for _, k := range []string{"tasks_per_s", "baseline_same_work_tasks_per_s", "ratio_same_work"} {
		if v, ok := l[k].(float64); !ok || v <= 0 {
			t.Errorf("%s = %v, want a positive number", k, l[k])
		}
	}
}
