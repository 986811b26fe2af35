package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/cluster"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/jobs"
)

func TestLogsFollowPrintsEachLineWhileTheJobStillRuns(t *testing.T) {
	ctx := frayt.Context(t, time.Minute)
	l, err := cluster.StartLocal(ctx, cluster.LocalOptions{Broker: broker.Options{StoreDir: t.TempDir()}, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop() })
	c, err := fray.Connect(ctx, l.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := c.Submit(ctx, jobs.JobRequest{Name: "slow-printer", Entrypoint: jobs.Command("sh", "-c", "echo first-line; exec sleep 60")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Terminate(context.WithoutCancel(ctx))
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := startCLI(t, fctx, "logs", "-f", "--nats", l.URL(), h.ID())
	frayt.Eventually(t, 20*time.Second, "fray logs -f shows the first line while the job runs", func() bool {
		return strings.Contains(r.Stdout(), "first-line")
	})
	if st, err := h.Status(ctx); err != nil || st.Terminal() {
		t.Fatalf("the job ended (%s, %v) before its line was shown", st.Status, err)
	}
	cancel()
	<-r.done
}
