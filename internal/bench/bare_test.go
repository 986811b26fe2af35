package bench

import (
	"context"
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
