package bench

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// bareTaskStream starts a broker with the bare path's task stream.
func bareTaskStream(t *testing.T) (*nats.Conn, jetstream.JetStream, jetstream.Stream, context.Context) {
	t.Helper()
	srv := frayt.Server(t)
	nc, js := frayt.Connect(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: bareTasks, Subjects: []string{bareTaskSubject},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	return nc, js, s, ctx
}

// A free-slots pull that the server refuses without a count (here 503 No
// Responders: the consumer does not exist yet, as when a replicated
// consumer's leader is still being elected) is asked again, so the bare
// path does not stall at its first request.
func TestBarePullAsksAgainAfterARefusedRequest(t *testing.T) {
	nc, js, s, ctx := bareTaskStream(t)
	got := make(chan bareJob, 1)
	release, err := barePull(ctx, nc, 4, true, func(j bareJob) { got <- j })
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if _, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "base", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, bareTaskSubject, []byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case j := <-got:
		if j.ack == "" {
			t.Fatalf("delivered without an ack subject: %+v", j)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the task was never delivered: the refused request was not asked again")
	}
}

// A stored result that the server refuses without a PubAck (503: the
// results stream is not there yet) is sent again, and its task is acked
// only once the result is stored.
func TestBareFinishStoresARefusedResultAgain(t *testing.T) {
	nc, js, s, ctx := bareTaskStream(t)
	c, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "base", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, bareTaskSubject, []byte("x")); err != nil {
		t.Fatal(err)
	}
	m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	stored, err := nc.SubscribeSync(bareStoredPrefix + ">")
	if err != nil {
		t.Fatal(err)
	}
	finish, err := bareFinish(nc, true)
	if err != nil {
		t.Fatal(err)
	}
	finish(m.Reply(), "tok") // no results stream yet: refused
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: bareResults, Subjects: []string{bareResultPrefix + ">"},
		Storage: jetstream.FileStorage, MaxMsgsPerSubject: 1,
		RePublish: &jetstream.RePublish{Source: bareResultPrefix + ">", Destination: bareStoredPrefix + ">"}}); err != nil {
		t.Fatal(err)
	}
	r, err := stored.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("the refused result was never stored: %v", err)
	}
	if r.Subject != bareStoredPrefix+"tok" {
		t.Fatalf("stored on %q, want %q", r.Subject, bareStoredPrefix+"tok")
	}
	frayt.Eventually(t, 10*time.Second, "the task acked once its result is stored", func() bool {
		info, err := c.Info(ctx)
		return err == nil && info.NumAckPending == 0
	})
}

// On a cluster, once awaitInterest returns a message published on any node
// reaches a subscriber made on another: the bare paths rely on it for
// replies and republished results, which nothing sends again.
func TestAwaitInterestWaitsForEveryNodeToRouteTheSubject(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srvs, err := startBrokers(ctx, 3, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(srvs)
	var pubs []*nats.Conn // connected first: publishes follow the subscription at once
	for _, srv := range srvs {
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		pubs = append(pubs, nc)
	}
	sub := pubs[0]
	// With no subscriber it waits until its context ends.
	short, stop := context.WithTimeout(ctx, 200*time.Millisecond)
	err = brokerMeter(srvs).awaitInterest(short, "probe.none.x")
	stop()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no subscriber: awaitInterest returned %v, want the context's deadline", err)
	}
	for round := range 20 {
		subject := fmt.Sprintf("probe.%d", round)
		got := make(chan *nats.Msg, len(srvs))
		s, err := sub.ChanSubscribe(subject+".>", got)
		if err != nil {
			t.Fatal(err)
		}
		if err := sub.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := brokerMeter(srvs).awaitInterest(ctx, subject+".x"); err != nil {
			t.Fatal(err)
		}
		for i, nc := range pubs {
			if err := nc.Publish(subject+".x", []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		for i := range srvs {
			select {
			case <-got:
			case <-time.After(5 * time.Second):
				t.Fatalf("round %d: %d of %d publishes arrived", round, i, len(srvs))
			}
		}
		s.Unsubscribe()
	}
}
