// Package frayt holds test helpers shared by fray's packages: an in-process,
// provisioned nats-server on file storage, connections to it, and waiting on
// conditions with a deadline.
package frayt

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server starts a provisioned single-node broker on a random port with its
// store in t.TempDir(), shut down when the test ends.
func Server(t testing.TB, po ...broker.ProvisionOptions) *broker.Server {
	t.Helper()
	return ServerAt(t, t.TempDir(), po...)
}

// ServerAt is Server with a given store directory, for restart tests.
func ServerAt(t testing.TB, dir string, po ...broker.ProvisionOptions) *broker.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := broker.Start(ctx, broker.Options{StoreDir: dir, Port: -1})
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	var opts broker.ProvisionOptions
	if len(po) > 0 {
		opts = po[0]
	}
	nc, js := Connect(t, srv.ClientURL())
	if err := broker.Provision(ctx, js, nc.ConnectedServerVersion(), opts); err != nil {
		t.Fatalf("provision: %v", err)
	}
	nc.Close()
	return srv
}

// connectTimeout bounds a test connection's handshake. nats.go's default
// of 2 s is too short for a server in a loaded test process: one with a few
// hundred workers, under -race, on a busy CI machine, can take longer to
// answer a new connection's CONNECT.
const connectTimeout = 30 * time.Second

// Connect opens a NATS connection closed when the test ends.
func Connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.Timeout(connectTimeout))
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// Eventually polls cond every 10 ms until it returns true, failing the test
// with msg when d passes first.
func Eventually(t testing.TB, d time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not true within %s: %s", d, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Context is a context cancelled after d or when the test ends.
func Context(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// FreePorts returns n distinct TCP ports free on loopback right now (all
// listened on at once, so they differ).
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// FreePort returns one TCP port free on loopback right now.
func FreePort(t testing.TB) int { t.Helper(); return FreePorts(t, 1)[0] }
