package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/tasks"
	"github.com/nats-io/nats.go/jetstream"
)

// resultsStored counts results in FRAY_RESULTS.
func resultsStored(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), broker.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestKilledWorkerLosesNoTask(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	victim := startWorker(t, c, "victim", "--concurrency", "8", "--ack-wait", "2s")
	startWorker(t, c, "survivor", "--concurrency", "8", "--ack-wait", "2s")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	const n = 1000
	futs := make([]*tasks.Future, n)
	for i := range futs {
		futs[i] = c.Run(ctx, "fray.sleep", 0.05, tasks.MaxDeliveries(10))
	}
	// Kill one worker while both are busy.
	waitFor(t, 30*time.Second, "some tasks done", func() bool {
		_, _, _ = tasks.Wait(ctx, futs, 1, 0)
		done := 0
		for _, f := range futs {
			select {
			case <-f.Done():
				done++
			default:
			}
		}
		return done >= 100
	})
	victim.Kill()

	var resolved atomic.Int32
	for _, f := range futs {
		var v float64
		if err := f.Get(ctx, &v); err != nil {
			t.Fatalf("task %s: %v", f.ID(), err)
		}
		if v != 0.05 {
			t.Fatalf("task %s: result %v", f.ID(), v)
		}
		resolved.Add(1)
	}
	if got := resolved.Load(); got != n {
		t.Fatalf("%d of %d results", got, n)
	}
	// One stored result per task: none lost, none recorded twice.
	if got := resultsStored(t, c.JetStream()); got != n {
		t.Fatalf("%d results stored, want exactly %d", got, n)
	}
}

func TestQueuedTasksSurviveABrokerRestart(t *testing.T) {
	store := t.TempDir()
	b := startBroker(t, store, 0)
	c := client(t, b.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const n = 1000
	futs := make([]*tasks.Future, n)
	for i := range futs {
		futs[i] = c.Run(ctx, "fray.echo", i)
	}
	// Every submission is acknowledged (stored) before the broker dies.
	waitFor(t, 30*time.Second, "all tasks queued", func() bool {
		s, err := c.JetStream().Stream(ctx, broker.StreamTasks)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs == n
	})
	b.Kill()
	b2 := startBroker(t, store, b.Port)
	startWorker(t, client(t, b2.URL), "after-restart", "--concurrency", "16")
	for i, f := range futs {
		var v int
		if err := f.Get(ctx, &v); err != nil || v != i {
			t.Fatalf("task %d: %d %v", i, v, err)
		}
	}
}

func TestResultsOutliveTheProducerProcess(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	startWorker(t, c, "w1")
	env := []string{"FRAY_CLUSTER_SPEC=" + b.URL}
	// One process submits and exits...
	var ids []string
	for i := range 5 {
		out, errOut, code := runFray(t, env, time.Minute, "run", "fray.echo", "--arg", fmt.Sprintf(`{"n": %d}`, i))
		if code != 0 {
			t.Fatalf("fray run: exit %d: %s", code, errOut)
		}
		ids = append(ids, strings.TrimSpace(out))
	}
	// ...and new processes read every result by id.
	for i, id := range ids {
		out, errOut, code := runFray(t, env, time.Minute, "result", id, "--wait", "30s")
		if code != 0 {
			t.Fatalf("fray result %s: exit %d: %s", id, code, errOut)
		}
		if want := fmt.Sprintf(`{"n":%d}`, i); strings.TrimSpace(out) != want {
			t.Fatalf("fray result %s: %q, want %q", id, out, want)
		}
	}
	// An unknown id is a clear miss, not a hang.
	_, errOut, code := runFray(t, env, time.Minute, "result", ids[0][:strings.IndexByte(ids[0], '.')]+".nosuchtask")
	if code == 0 || !strings.Contains(errOut, "no result") {
		t.Fatalf("missing result: exit %d, stderr %q", code, errOut)
	}
}

func TestShellExecHandlerServesTasksAndReportsFailure(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	dir := t.TempDir()
	script := filepath.Join(dir, "wordcount.sh")
	os.WriteFile(script, []byte(`#!/bin/sh
# Reads {"text": "..."} on stdin and prints {"words": N}; fails on empty text.
input=$(cat)
text=$(printf '%s' "$input" | sed -n 's/.*"text":"\([^"]*\)".*/\1/p')
if [ -z "$text" ]; then
  echo "wordcount: no text given" >&2
  exit 2
fi
printf '{"words": %d}\n' "$(printf '%s' "$text" | wc -w)"
`), 0o755)
	startWorker(t, c, "exec-worker", "--exec", "wordcount="+script)
	env := []string{"FRAY_CLUSTER_SPEC=" + b.URL}
	out, errOut, code := runFray(t, env, time.Minute, "run", "wordcount", "--arg", `{"text":"the quick brown fox"}`, "--wait")
	if code != 0 || strings.TrimSpace(out) != `{"words":4}` {
		t.Fatalf("wordcount: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	_, errOut, code = runFray(t, env, time.Minute, "run", "wordcount", "--arg", `{"text":""}`, "--wait")
	if code == 0 || !strings.Contains(errOut, "exited with status 2") || !strings.Contains(errOut, "wordcount: no text given") {
		t.Fatalf("failing script: exit %d, stderr %q; want the status and the script's stderr", code, errOut)
	}
	// An unknown function fails fast with the registered names.
	_, errOut, code = runFray(t, env, time.Minute, "run", "nosuch", "--wait")
	if code == 0 || !strings.Contains(errOut, "unknown function") || !strings.Contains(errOut, "wordcount") {
		t.Fatalf("unknown function: exit %d, stderr %q", code, errOut)
	}
}

func TestSIGTERMDrainsAWorker(t *testing.T) {
	b := startBroker(t, "", 0)
	c := client(t, b.URL)
	first := startWorker(t, c, "first", "--concurrency", "2", "--drain-timeout", "30s")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Two long tasks occupy the first worker; eight more wait in the queue.
	running := []*tasks.Future{c.Run(ctx, "fray.sleep", 6.0), c.Run(ctx, "fray.sleep", 6.0)}
	waitFor(t, 20*time.Second, "first worker busy", func() bool {
		for _, w := range c.Workers() {
			if w.ID == "first" && w.Running == 2 {
				return true
			}
		}
		return false
	})
	var queued []*tasks.Future
	for range 8 {
		queued = append(queued, c.Run(ctx, "fray.sleep", 0.01))
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var termErr error
	go func() { defer wg.Done(); termErr = first.Term(60 * time.Second) }()
	startWorker(t, c, "second", "--concurrency", "4")
	for _, f := range queued {
		r, err := f.Result(ctx)
		if err != nil || r.Worker != "second" {
			t.Fatalf("queued task ran on %q (%v), want the second worker", r.Worker, err)
		}
	}
	for _, f := range running {
		r, err := f.Result(ctx)
		if err != nil || r.Worker != "first" || r.Attempt != 1 {
			t.Fatalf("running task: worker %q attempt %d %v; want it finished on first, attempt 1", r.Worker, r.Attempt, err)
		}
	}
	wg.Wait()
	if termErr != nil {
		t.Fatalf("worker exit after SIGTERM: %v", termErr)
	}
}
