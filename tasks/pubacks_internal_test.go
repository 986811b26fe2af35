package tasks

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/nats-io/nats.go"
)

// bg is the context of publishes that wait as long as it takes.
var bg = context.Background()

// waiters is the number of publishes waiting for a slot.
func (p *asyncPublisher) waiters() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

// verdicts records the PubAck verdicts a publish hears.
type verdicts chan error

func (v verdicts) pubAcked(err error) { v <- err }

// next waits for the next verdict.
func (v verdicts) next(t *testing.T) error {
	t.Helper()
	select {
	case err := <-v:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no verdict")
		return nil
	}
}

// none checks that no verdict came.
func (v verdicts) none(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case err := <-v:
		t.Fatalf("unexpected verdict %v", err)
	case <-time.After(within):
	}
}

// standing starts a publisher to subject "s" on a server where nothing
// but the test answers: stream hands out the publishes, which the test
// answers (or not) as a stream would. The publisher closes with the test.
func standing(t *testing.T, maxPending int, timeout time.Duration) (p *asyncPublisher, nc *nats.Conn, stream <-chan *nats.Msg) {
	t.Helper()
	srv := frayt.Server(t)
	nc, _ = frayt.Connect(t, srv.ClientURL())
	got := make(chan *nats.Msg, 128)
	sub, err := nc.ChanSubscribe("s", got)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if p, err = newAsyncPublisher(nc, maxPending, timeout); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	return p, nc, got
}

func received(t *testing.T, c <-chan *nats.Msg) *nats.Msg {
	t.Helper()
	select {
	case m := <-c:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("publish not received")
		return nil
	}
}

const positivePubAck = `{"stream":"S","seq":1}`

// A publish's slot, and its reply subject, serve the next publish once its
// PubAck arrived: no reply subject is made per message.
func TestAPublishSlotServesAgainOnceItsPubAckArrived(t *testing.T) {
	p, nc, stream := standing(t, 1, time.Minute)
	v := make(verdicts, 4)
	first := &nats.Msg{Subject: "s"}
	if err := p.publish(bg, first, nil, v); err != nil {
		t.Fatal(err)
	}
	nc.Publish(received(t, stream).Reply, []byte(positivePubAck))
	if err := v.next(t); err != nil {
		t.Fatalf("a positive PubAck gave %v", err)
	}
	second := &nats.Msg{Subject: "s"}
	if err := p.publish(bg, second, nil, v); err != nil {
		t.Fatal(err)
	}
	if second.Reply != first.Reply {
		t.Fatalf("the slot's reply subject changed from %q to %q though its PubAck arrived", first.Reply, second.Reply)
	}
	nc.Publish(received(t, stream).Reply, []byte(`{"error":{"code":400,"err_code":10077,"description":"maximum messages exceeded"}}`))
	var pe *pubAckError
	if err := v.next(t); !errors.As(err, &pe) || pe.Description != "maximum messages exceeded" {
		t.Fatalf("a negative PubAck gave %v", err)
	}
}

// An unanswered publish fails with errPubAckTimeout once its timeout
// passed: its sender may resend it.
func TestAnUnansweredPublishTimesOut(t *testing.T) {
	p, _, stream := standing(t, 4, 50*time.Millisecond)
	v := make(verdicts, 1)
	start := time.Now()
	if err := p.publish(bg, &nats.Msg{Subject: "s"}, nil, v); err != nil {
		t.Fatal(err)
	}
	received(t, stream)
	if err := v.next(t); !errors.Is(err, errPubAckTimeout) {
		t.Fatalf("an unanswered publish gave %v, want errPubAckTimeout", err)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Fatalf("timed out after %s, before its 50ms timeout", waited)
	}
}

// A publish given up on (timed out, or failed on a reconnect, as expire
// does) frees its slot under a new reply subject: its PubAck arriving late
// is dropped, not taken for the verdict of the message published next.
func TestALatePubAckIsNotTakenForAnotherMessages(t *testing.T) {
	p, nc, stream := standing(t, 1, time.Minute)
	late, next := make(verdicts, 4), make(verdicts, 4)
	if err := p.publish(bg, &nats.Msg{Subject: "s"}, nil, late); err != nil {
		t.Fatal(err)
	}
	lateReply := received(t, stream).Reply
	p.fail(p.busy(func(*inflight) bool { return true }), errPubAckTimeout) // as expire does
	if err := late.next(t); !errors.Is(err, errPubAckTimeout) {
		t.Fatalf("the message given up on heard %v", err)
	}
	m := &nats.Msg{Subject: "s"}
	if err := p.publish(bg, m, nil, next); err != nil {
		t.Fatal(err)
	}
	if m.Reply == lateReply {
		t.Fatalf("the slot kept reply subject %q after giving its message up", m.Reply)
	}
	nextReply := received(t, stream).Reply
	nc.Publish(lateReply, []byte(positivePubAck))
	nc.Publish(nextReply, []byte(`{"error":{"code":503,"err_code":10008,"description":"JetStream temporarily unavailable"}}`))
	var pe *pubAckError
	if err := next.next(t); !errors.As(err, &pe) || pe.ErrCode != 10008 {
		t.Fatalf("the next message heard %v, want its own negative PubAck", err)
	}
	late.none(t, 0)
}

// While maxPending messages await their PubAck a publish waits; a PubAck
// lets it go, and closing fails a waiting publish and every message still
// awaiting its PubAck with ErrClosed.
func TestAPublishWaitsForAFreeSlotAndCloseReleasesIt(t *testing.T) {
	p, nc, stream := standing(t, 1, time.Minute)
	v := make(verdicts, 4)
	if err := p.publish(bg, &nats.Msg{Subject: "s"}, nil, v); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- p.publish(bg, &nats.Msg{Subject: "s"}, nil, v) }()
	select {
	case err := <-waited:
		t.Fatalf("a publish beyond maxPending did not wait: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	nc.Publish(received(t, stream).Reply, []byte(positivePubAck))
	if err := <-waited; err != nil {
		t.Fatalf("the waiting publish failed: %v", err)
	}
	if err := v.next(t); err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() { blocked <- p.publish(bg, &nats.Msg{Subject: "s"}, nil, v) }()
	p.close()
	if err := <-blocked; !errors.Is(err, ErrClosed) {
		t.Fatalf("a publish waiting at close gave %v, want ErrClosed", err)
	}
	if err := v.next(t); !errors.Is(err, ErrClosed) {
		t.Fatalf("a message awaiting its PubAck at close heard %v, want ErrClosed", err)
	}
}

// With the window full, waiting publishes are let go in batches (a
// sixteenth of the window): every one of them goes once enough PubAcks
// arrived, none is left waiting.
func TestPublishesWaitingOnAFullWindowAllGoAsPubAcksArrive(t *testing.T) {
	p, nc, stream := standing(t, 32, time.Minute)
	v := make(verdicts, 64)
	for range 32 {
		if err := p.publish(bg, &nats.Msg{Subject: "s"}, nil, v); err != nil {
			t.Fatal(err)
		}
	}
	const waiters = 5
	went := make(chan error, waiters)
	for range waiters {
		go func() { went <- p.publish(bg, &nats.Msg{Subject: "s"}, nil, v) }()
	}
	for range 32 + waiters {
		nc.Publish(received(t, stream).Reply, []byte(positivePubAck))
	}
	for range waiters {
		select {
		case err := <-went:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a publish still waits with every slot free")
		}
	}
	for range 32 + waiters {
		if err := v.next(t); err != nil {
			t.Fatal(err)
		}
	}
}

// A publish waiting for a slot gives up when its context ends, and leaves
// the queue of waiting publishes as it was: the next one still gets the
// next slot.
func TestAPublishWaitingForASlotGivesUpWithItsContext(t *testing.T) {
	p, nc, stream := standing(t, 1, time.Minute)
	v := make(verdicts, 4)
	if err := p.publish(bg, &nats.Msg{Subject: "s"}, nil, v); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	gaveUp := make(chan error, 1)
	go func() { gaveUp <- p.publish(ctx, &nats.Msg{Subject: "s"}, nil, v) }()
	frayt.Eventually(t, 5*time.Second, "the publish waits", func() bool { return p.waiters() == 1 })
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("a waiting publish whose context ended gave %v, want context.Canceled", err)
	}
	if n := p.waiters(); n != 0 {
		t.Fatalf("%d publishes still queued after the only waiter gave up", n)
	}
	next := make(chan error, 1)
	go func() { next <- p.publish(bg, &nats.Msg{Subject: "s"}, nil, v) }()
	nc.Publish(received(t, stream).Reply, []byte(positivePubAck))
	if err := <-next; err != nil {
		t.Fatalf("the publish after one gave up: %v", err)
	}
	if m := received(t, stream); m.Reply == "" {
		t.Fatal("the next publish went out without a reply subject")
	}
	v.next(t)
}

// Publishes waiting on a full window get slots in the order they came,
// and a publish that comes later queues behind them rather than taking a
// slot freed for them.
func TestWaitingPublishesGoFirstComeFirstServed(t *testing.T) {
	p, nc, stream := standing(t, 1, time.Minute)
	v := make(verdicts, 8)
	if err := p.publish(bg, &nats.Msg{Subject: "s", Data: []byte("0")}, nil, v); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		go func() {
			if err := p.publish(bg, &nats.Msg{Subject: "s", Data: []byte{'0' + byte(i)}}, nil, v); err != nil {
				t.Error(err)
			}
		}()
		frayt.Eventually(t, 5*time.Second, "the publish waits", func() bool { return p.waiters() == i })
	}
	last := received(t, stream) // "0", holding the one slot
	for want := byte('1'); want <= '3'; want++ {
		nc.Publish(last.Reply, []byte(positivePubAck))
		if last = received(t, stream); last.Data[0] != want {
			t.Fatalf("publish %c went before %c, which waited longer", last.Data[0], want)
		}
		// A newcomer while others wait queues behind them.
		if want == '1' {
			go func() {
				if err := p.publish(bg, &nats.Msg{Subject: "s", Data: []byte("4")}, nil, v); err != nil {
					t.Error(err)
				}
			}()
			frayt.Eventually(t, 5*time.Second, "the newcomer waits", func() bool { return p.waiters() == 3 })
		}
	}
	nc.Publish(last.Reply, []byte(positivePubAck))
	if m := received(t, stream); m.Data[0] != '4' {
		t.Fatalf("the last to come went as %c", m.Data[0])
	}
}

// While publishes wait for a batch of slots to free, a new publish queues
// behind them even if a slot is free already: it does not take it first.
func TestANewPublishDoesNotTakeASlotFreedForThoseWaiting(t *testing.T) {
	p, nc, stream := standing(t, 32, time.Minute) // slots go to waiters two at a time
	v := make(verdicts, 64)
	for range 32 {
		if err := p.publish(bg, &nats.Msg{Subject: "s"}, nil, v); err != nil {
			t.Fatal(err)
		}
	}
	waited := make(chan error, 2)
	go func() { waited <- p.publish(bg, &nats.Msg{Subject: "s"}, nil, v) }()
	frayt.Eventually(t, 5*time.Second, "the publish waits", func() bool { return p.waiters() == 1 })
	nc.Publish(received(t, stream).Reply, []byte(positivePubAck)) // one slot free: not yet a batch
	v.next(t)
	go func() { waited <- p.publish(bg, &nats.Msg{Subject: "s"}, nil, v) }()
	frayt.Eventually(t, 5*time.Second, "the newcomer queues", func() bool { return p.waiters() == 2 })
	nc.Publish(received(t, stream).Reply, []byte(positivePubAck)) // a batch of two: both go
	for range 2 {
		if err := <-waited; err != nil {
			t.Fatal(err)
		}
	}
}

// A publish handed a slot just as the publisher closes either fails or
// hears its verdict: never is it sent with nobody left to answer it. (The
// slot goes to the waiter in take; close's sweep of the busy slots runs
// before the woken waiter marks its slot busy.)
func TestAPublishGivenASlotAsThePublisherClosesHearsAVerdict(t *testing.T) {
	srv := frayt.Server(t)
	nc, _ := frayt.Connect(t, srv.ClientURL())
	sub, err := nc.Subscribe("s", func(*nats.Msg) {}) // stored, never answered
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // the woken waiter runs after close, as on a busy machine
	for i := range 50 {
		p, err := newAsyncPublisher(nc, 1, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		first := make(verdicts, 1)
		if err := p.publish(bg, &nats.Msg{Subject: "s"}, nil, first); err != nil {
			t.Fatal(err)
		}
		v := make(verdicts, 1)
		sent := make(chan error, 1)
		go func() { sent <- p.publish(bg, &nats.Msg{Subject: "s"}, nil, v) }()
		frayt.Eventually(t, 5*time.Second, "the publish waits", func() bool { return p.waiters() == 1 })
		if _, ok := p.take(0, false); !ok { // the first message's PubAck: its slot goes to the waiter
			t.Fatal("slot 0 not busy")
		}
		p.close()
		if err := <-sent; err != nil {
			continue // failed at once: fine
		}
		select {
		case <-v:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: a publish sent as the publisher closed never heard its verdict", i)
		}
	}
}
