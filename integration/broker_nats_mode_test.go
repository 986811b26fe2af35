package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
)

// fray-broker --nats runs no server of its own: it provisions an existing
// NATS server and runs the cluster services there.
func TestBrokerProvisionsAndServesAnExistingNATSServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	plain, err := broker.Start(ctx, broker.Options{Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Shutdown()
	p := start(t, "fray-broker", nil, "--nats", plain.ClientURL(), "--log-level", "warn")
	line := p.waitLine("fray-broker ready", time.Minute)
	if !strings.Contains(line, "url="+plain.ClientURL()) {
		t.Fatalf("ready line %q does not name the existing server %s", line, plain.ClientURL())
	}
	c := client(t, plain.ClientURL())
	startWorker(t, c, "w-existing")
	var got string
	if err := c.Run(ctx, "fray.echo", "served").Get(ctx, &got); err != nil || got != "served" {
		t.Fatalf("task on the existing server: %q %v", got, err)
	}
	// Jobs work too: the dispatcher runs inside that fray-broker.
	out, errOut, code := runFray(t, []string{"FRAY_CLUSTER_SPEC=" + plain.ClientURL()}, time.Minute, "submit", "--wait", "--", "echo", "dispatched")
	if code != 0 || !strings.Contains(out, "dispatched") {
		t.Fatalf("job: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if err := p.Term(30 * time.Second); err != nil {
		t.Fatalf("fray-broker exit: %v", err)
	}
	// Its server is untouched by its exit.
	if !plain.NATS().Running() {
		t.Fatal("the existing server stopped with fray-broker")
	}
}
