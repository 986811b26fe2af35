package tasks

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/nats-io/nats.go"
)

// Once the queue runs dry a worker keeps one pull request open: slots
// freed while it is open are asked for when it is filled, not each on its
// own (which doubled the consumer's waiting list, walked by the server on
// every task). While the queue is busy, a freed slot is asked for at once.
func TestAPullerKeepsOneRequestOpenOnceTheQueueRunsDry(t *testing.T) {
	srv := frayt.Server(t)
	nc, _ := frayt.Connect(t, srv.ClientURL())
	snoop, _ := frayt.Connect(t, srv.ClientURL())
	p := newPuller(nc, "S", "C", 2, 0)
	// A channel subscription: the snooping connection's reader puts each
	// request in it before it reads the PONG that ends a flush.
	got := make(chan *nats.Msg, 64)
	sub, err := snoop.ChanSubscribe(p.subject, got)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := snoop.Flush(); err != nil {
		t.Fatal(err)
	}
	// seen is the requests the server has passed on so far: nc's flush
	// puts them before snoop's PONG.
	var bodies []string
	seen := func() []string {
		t.Helper()
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := snoop.Flush(); err != nil {
			t.Fatal(err)
		}
		for len(got) > 0 {
			bodies = append(bodies, string((<-got).Data))
		}
		return slices.Clone(bodies)
	}
	// A task as delivered: its ack subject ends with the number of
	// messages still pending on the consumer.
	task := func(pending int) *nats.Msg {
		return &nats.Msg{Subject: "fray.tasks.default", Data: []byte("task"), Sub: sub,
			Reply: fmt.Sprintf("$JS.ACK.FRAY_TASKS.pool-default.1.7.7.1700000000000000000.%d", pending)}
	}

	p.start()
	if got := seen(); len(got) != 1 || !strings.Contains(got[0], `"batch":2`) {
		t.Fatalf("at start: %q, want one request for both slots", got)
	}
	if p.onMsg(task(0)) != pulledTask {
		t.Fatal("the first task was not given a slot")
	}
	p.release(0) // the task ends; the request still waits for one more
	if got := seen(); len(got) != 1 {
		t.Fatalf("after a task ended with the request open: %q, want no new request", got)
	}
	if p.onMsg(task(0)) != pulledTask {
		t.Fatal("the second task was not given a slot")
	}
	// The request is filled: the free slot is asked for at once.
	if got := seen(); len(got) != 2 || !strings.Contains(got[1], `"batch":1`) {
		t.Fatalf("after the request was filled: %q, want a second request for the one free slot", got)
	}
	// Now the queue is busy: a task fills the open request saying three
	// more wait (the worker asks for its other slot at once, as on any
	// fill), and the slot it frees is asked for at once too, though that
	// request is still open.
	p.release(0)
	if got := seen(); len(got) != 2 {
		t.Fatalf("the queue dry, a slot freed: %q, want no new request", got)
	}
	if p.onMsg(task(3)) != pulledTask {
		t.Fatal("the third task was not given a slot")
	}
	if got := seen(); len(got) != 3 {
		t.Fatalf("after a fill: %q, want a third request", got)
	}
	p.release(0)
	if got := seen(); len(got) != 4 || !strings.Contains(got[3], `"batch":1`) {
		t.Fatalf("a slot freed while the queue is busy: %q, want a fourth request at once", got)
	}
	if all := seen(); strings.Contains(strings.Join(all, ""), "idle_heartbeat") {
		t.Fatalf("requests ask for idle heartbeats: %q", all)
	}
}
