package fray_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/dispatcher/iris"
	"github.com/frayhq/fray/internal/cluster"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
)

func TestConnectRefusesABackendAddressOtherThanTheBrokers(t *testing.T) {
	ctx := frayt.Context(t, time.Minute)
	b, err := iris.New(iris.Options{Controller: "http://127.0.0.1:10001"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := cluster.StartLocal(ctx, cluster.LocalOptions{NoWorkers: true, Services: cluster.ServiceOptions{Backends: []dispatcher.Backend{b}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	// Connect asks the broker's dispatcher: wait until it serves.
	nc, err := nats.Connect(l.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	body, _ := objects.Marshal(&jobwire.BackendsRequest{V: jobwire.WireVersion})
	frayt.Eventually(t, 10*time.Second, "the dispatcher answers", func() bool {
		_, err := nc.Request(jobwire.SubjectBackends, body, time.Second)
		return err == nil
	})

	_, err = fray.Connect(ctx, "iris?controller=http://127.0.0.1:10002&nats="+l.URL())
	if !errors.Is(err, fray.ErrBackendMismatch) || !strings.Contains(err.Error(), "controller=http://127.0.0.1:10002") ||
		!strings.Contains(err.Error(), "at http://127.0.0.1:10001") {
		t.Fatalf("Connect with another controller than the broker's: %v; want ErrBackendMismatch naming both", err)
	}
	_, err = fray.Connect(ctx, "ray?address=http://127.0.0.1:8265&nats="+l.URL())
	if !errors.Is(err, fray.ErrBackendMismatch) || !strings.Contains(err.Error(), "no ray backend") {
		t.Fatalf("Connect with a ray spec to a broker without Ray: %v; want ErrBackendMismatch, no ray backend", err)
	}
	c, err := fray.Connect(ctx, "iris?controller=http://127.0.0.1:10001/&nats="+l.URL())
	if err != nil {
		t.Fatalf("Connect with the broker's own controller: %v", err)
	}
	c.Close()
}
