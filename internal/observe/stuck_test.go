package observe_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/observe/observetest"
	"github.com/frayhq/fray/tasks"
	"github.com/frayhq/fray/worker"
)

// openAndStall sends a GET for path on a raw connection and never reads
// the answer: a browser or scraper that has stopped.
func openAndStall(t *testing.T, base, path, accept string) net.Conn {
	t.Helper()
	host := strings.TrimPrefix(base, "http://")
	host, _, _ = strings.Cut(host, "/")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: %s\r\n\r\n", path, host, accept)
	return c
}

func TestStalledBrowsersAndScrapersDoNotHoldUpTheCluster(t *testing.T) {
	ctx := frayt.Context(t, 2*time.Minute)
	cl := observetest.Start(t, ctx, worker.Options{Concurrency: 4})
	for _, p := range []string{"/", "/jobs", "/workers", "/failures"} {
		for range 5 {
			openAndStall(t, cl.UIURL, p, "text/event-stream")
		}
	}
	for range 5 {
		openAndStall(t, cl.MetricsURL, "/metrics", "text/plain")
	}
	// Work that changes the view all the time, so every stalled stream
	// has content it cannot deliver.
	var futs []*tasks.Future
	for i := range 500 {
		futs = append(futs, cl.Client.Run(ctx, "fray.echo", i))
	}
	for i, f := range futs {
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		_, err := f.Result(wctx)
		cancel()
		if err != nil {
			t.Fatalf("task %d with stalled readers: %v", i, err)
		}
	}
	// The dashboard still answers a reader that reads.
	resp, err := http.Get(cl.UIURL + "/workers")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the dashboard beside stalled readers: %s", resp.Status)
	}
	waitFor(t, cl.MetricsURL, "metrics beside stalled scrapers", map[string]float64{"fray_tasks_completed_total": 500},
		map[string]map[string]string{"fray_tasks_completed_total": {"fn": "fray.echo"}})
}
