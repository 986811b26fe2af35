package integration

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// get fetches url and returns its status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestFrayUpPrintsAWorkingDashboardURL(t *testing.T) {
	up := start(t, "fray", nil, "up", "--workers", "2", "--port", "-1", "--metrics-addr", "127.0.0.1:0")
	up.waitLine("export FRAY_CLUSTER_SPEC=", 60*time.Second)
	line := up.waitLine("dashboard: ", 10*time.Second)
	dash := strings.TrimSpace(strings.TrimPrefix(line, "dashboard: "))
	if !strings.HasPrefix(dash, "http://127.0.0.1:") {
		t.Fatalf("fray up printed %q: want a loopback dashboard URL", line)
	}
	metrics := strings.TrimSpace(strings.TrimPrefix(up.waitLine("metrics: ", 10*time.Second), "metrics: "))
	for _, path := range []string{"", "jobs", "workers", "actors", "failures"} {
		code, body := get(t, dash+path)
		if code != http.StatusOK || !strings.Contains(body, "<title>") || !strings.Contains(body, "/static/app.js") {
			t.Fatalf("GET %s%s: %d\n%s", dash, path, code, body)
		}
	}
	waitFor(t, 20*time.Second, "the dashboard lists both workers", func() bool {
		_, body := get(t, dash+"workers")
		return strings.Contains(body, "local-0") && strings.Contains(body, "local-1")
	})
	waitFor(t, 20*time.Second, "the metrics count both workers", func() bool {
		_, body := get(t, metrics)
		return strings.Contains(body, `fray_workers_live{pool="default"} 2`)
	})
	stopUp(t, up)
}

func TestBrokerServesMetricsAndDashboard(t *testing.T) {
	p := start(t, "fray-broker", nil, "--store", t.TempDir(), "--port", "-1", "--log-level", "warn",
		"--metrics-addr", "127.0.0.1:0", "--ui-addr", "127.0.0.1:0")
	metrics := strings.TrimPrefix(strings.Fields(p.waitLine("fray-broker metrics url=", 60*time.Second))[2], "url=")
	dash := strings.TrimPrefix(strings.Fields(p.waitLine("fray-broker dashboard url=", 10*time.Second))[2], "url=")
	url := strings.TrimPrefix(strings.Fields(p.waitLine("fray-broker ready", 60*time.Second))[2], "url=")
	waitFor(t, 20*time.Second, "the broker's metrics list the streams", func() bool {
		_, body := get(t, metrics)
		return strings.Contains(body, `fray_stream_messages{stream="FRAY_TASKS"}`) && strings.Contains(body, "go_goroutines") &&
			strings.Contains(body, `fray_jobs{state="RUNNING"} 0`)
	})
	if code, body := get(t, dash); code != http.StatusOK || !strings.Contains(body, "No pools yet") {
		t.Fatalf("GET %s: %d, want the overview saying no pool has a worker yet:\n%s", dash, code, body)
	}
	if code, _ := get(t, dash+"jobs/default/nothing"); code != http.StatusNotFound {
		t.Fatalf("an unknown job's page: %d, want 404", code)
	}

	// A worker's own metrics.
	w := start(t, "fray-worker", nil, "--nats", url, "--id", "metered", "--concurrency", "3", "--log-level", "warn", "--metrics-addr", "127.0.0.1:0")
	wmetrics := strings.TrimPrefix(strings.Fields(w.waitLine("fray-worker metrics url=", 60*time.Second))[2], "url=")
	w.waitLine("fray-worker ready", 60*time.Second)
	if out, errOut, code := runFray(t, []string{"FRAY_CLUSTER_SPEC=" + url}, time.Minute, "run", "fray.echo", "--arg", "1", "--wait"); code != 0 {
		t.Fatalf("fray run: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	waitFor(t, 20*time.Second, "the worker's metrics count the task", func() bool {
		_, body := get(t, wmetrics)
		return strings.Contains(body, `fray_worker_tasks_started_total{fn="fray.echo"} 1`) &&
			strings.Contains(body, `fray_worker_slots{pool="default"} 3`) && strings.Contains(body, "process_cpu_seconds_total")
	})
	waitFor(t, 20*time.Second, "the broker's metrics count the task", func() bool {
		_, body := get(t, metrics)
		return strings.Contains(body, `fray_tasks_completed_total{fn="fray.echo",pool="default"} 1`) &&
			strings.Contains(body, `fray_workers_live{pool="default"} 1`)
	})
}

func TestDashboardBeyondLoopbackWithoutTokenWarns(t *testing.T) {
	p := start(t, "fray-broker", nil, "--store", t.TempDir(), "--port", "-1", "--log-level", "warn", "--ui-addr", "0.0.0.0:0")
	p.waitLine("fray-broker ready", 60*time.Second)
	if out := p.Output(); !strings.Contains(out, "warning: the dashboard") || !strings.Contains(out, "--ui-token") {
		t.Fatalf("fray-broker --ui-addr 0.0.0.0:0 printed no warning naming --ui-token:\n%s", out)
	}
}

// runBin runs a built binary to completion.
func runBin(t *testing.T, name string, args ...string) (stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin[name], args...)
	var e bytes.Buffer
	cmd.Stderr = &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return e.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return e.String(), 0
}

func TestObserveAddressInUseExits2NamingTheFlag(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	store := t.TempDir()
	cases := []struct {
		name string
		args []string
		flag string
	}{
		{"fray-broker", []string{"--store", store, "--port", "-1", "--metrics-addr", addr}, "--metrics-addr"},
		{"fray-broker", []string{"--store", store, "--port", "-1", "--ui-addr", addr}, "--ui-addr"},
		{"fray-broker", []string{"--store", store, "--port", "-1", "--ui-addr", "nonsense"}, "--ui-addr"},
		{"fray-worker", []string{"--nats", "nats://127.0.0.1:1", "--metrics-addr", addr}, "--metrics-addr"},
		{"fray", []string{"up", "--port", "-1", "--ui-addr", addr}, "--ui-addr"},
		{"fray", []string{"up", "--port", "-1", "--metrics-addr", addr}, "--metrics-addr"},
		{"fray", []string{"dashboard", "--nats", "nats://127.0.0.1:1", "--addr", addr}, "--addr"},
	}
	for _, c := range cases {
		stderr, code := runBin(t, c.name, c.args...)
		if code != 2 || !strings.Contains(stderr, c.flag) {
			t.Errorf("%s %s: exit %d, stderr %q; want exit 2 naming %s", c.name, strings.Join(c.args, " "), code, stderr, c.flag)
		}
	}
}
