package tasks_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/tasks"
	"github.com/nats-io/nats.go/jetstream"
)

// A pool with more workers than its consumer's MaxWaiting allows: the
// worker whose pull request is refused says which limit it hit and how to
// raise it, keeps asking, and gets tasks once a request ends.
func TestAWorkerRefusedByTheConsumersMaxWaitingSaysSoAndAsksAgain(t *testing.T) {
	e := newEnv(t)
	ctx := frayt.Context(t, 60*time.Second)
	_, js := frayt.Connect(t, e.url)
	// A consumer created (by an older fray, say) with room for one open
	// request: the executors keep its MaxWaiting, which cannot change.
	if _, err := js.CreateConsumer(ctx, broker.StreamTasks, jetstream.ConsumerConfig{
		Durable: taskwire.ConsumerName(tasks.DefaultPool), FilterSubject: taskwire.TaskSubject(tasks.DefaultPool),
		AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: -1, MaxAckPending: -1, MaxWaiting: 1,
	}); err != nil {
		t.Fatal(err)
	}
	waiting := func() int {
		c, err := js.Consumer(ctx, broker.StreamTasks, taskwire.ConsumerName(tasks.DefaultPool))
		if err != nil {
			return -1
		}
		return c.CachedInfo().NumWaiting
	}
	_, stop1 := e.executor("w1", basicRegistry(), func(o *tasks.ExecutorOptions) { o.Concurrency = 1 })
	frayt.Eventually(t, 10*time.Second, "w1's pull request waits on the consumer", func() bool { return waiting() == 1 })

	var log frayt.SyncBuffer
	e.executor("w2", basicRegistry(), func(o *tasks.ExecutorOptions) {
		o.Concurrency = 1
		o.Logger = slog.New(slog.NewTextHandler(&log, nil))
	})
	frayt.Eventually(t, 10*time.Second, "w2 says its pull request was refused for MaxWaiting", func() bool {
		return strings.Contains(log.String(), "holds at most 1 open pull requests (its MaxWaiting") &&
			strings.Contains(log.String(), "nats consumer rm "+broker.StreamTasks+" "+taskwire.ConsumerName(tasks.DefaultPool)) &&
			strings.Contains(log.String(), broker.ErrLimit.Error())
	})
	if c, err := js.Consumer(ctx, broker.StreamTasks, taskwire.ConsumerName(tasks.DefaultPool)); err != nil || c.CachedInfo().Config.MaxWaiting != 1 {
		t.Fatalf("the consumer's MaxWaiting changed (or it is gone: %v)", err)
	}

	// w1 goes: its request ends, and w2, asking again, gets the room and
	// the task.
	stop1()
	p := e.producer()
	var sum int
	if err := p.Submit(ctx, "add", [2]int{2, 3}).Get(ctx, &sum); err != nil || sum != 5 {
		t.Fatalf("task after w1 left: %d %v", sum, err)
	}
}
