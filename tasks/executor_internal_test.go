package tasks

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/nats-io/nats.go"
)

func (p *puller) isDraining() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.draining
}

func TestATaskNotStartedWhenTheDrainBeginsIsHandedBackNotRun(t *testing.T) {
	srv := frayt.Server(t)
	nc, js := frayt.Connect(t, srv.ClientURL())
	reg := NewRegistry()
	var started atomic.Int32
	Register(reg, "block", func(ctx context.Context, _ int) (int, error) {
		started.Add(1)
		<-ctx.Done()
		return 0, ctx.Err()
	})
	// HandlerContext runs after the message is taken from the work channel
	// and before the task starts: hold the task there while the drain
	// begins.
	entered, proceed := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	ex, err := NewExecutor(nc, js, ExecutorOptions{WorkerID: "w1", Registry: reg, Concurrency: 2, DrainTimeout: time.Minute,
		HandlerContext: func(ctx context.Context) context.Context {
			if first.CompareAndSwap(false, true) {
				close(entered)
				<-proceed
			}
			return ctx
		}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ex.Run(runCtx) }()
	pnc, _ := frayt.Connect(t, srv.ClientURL())
	p, err := NewProducer(frayt.Context(t, 5*time.Second), pnc, ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Submit(context.Background(), "block", 1)
	ctx := frayt.Context(t, 10*time.Second)
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the task never reached its slot")
	}
	stop()
	frayt.Eventually(t, 5*time.Second, "the executor drains", ex.pull.isDraining)
	close(proceed)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("drain waited on a task that started after the drain began")
	}
	if n := started.Load(); n != 0 {
		t.Fatalf("the task started %d times after the drain began; want it handed back", n)
	}
}

func TestAPullRefusedWithoutACountIsNotRetriedInABusyLoop(t *testing.T) {
	srv := frayt.Server(t)
	nc, _ := frayt.Connect(t, srv.ClientURL())
	// No such consumer: the request has no responders (503, no count).
	p := newPuller(nc, "FRAY_TASKS", "pool-nobody", 4, 0)
	var statuses atomic.Int32
	sub, err := nc.Subscribe(p.inbox+".*", func(m *nats.Msg) {
		p.onMsg(m)
		statuses.Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	p.start()
	frayt.Eventually(t, 5*time.Second, "the refusal arrives", func() bool { return statuses.Load() > 0 })
	p.mu.Lock()
	seq := p.seq
	p.mu.Unlock()
	if seq != 1 {
		t.Fatalf("%d requests sent on the heels of the refusal, want 1 (ask again on the next tick)", seq)
	}
}
