package tasks_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/tasks"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A task's message names it whatever its tokens hold: an owner or a task
// id may contain '~' (a valid token), which ends the name only in a
// worker's copy (a message with Fray-Prior-Deliveries), before the
// "~<seq>" the copy adds. Tasks handed on, copies of copies among them,
// run under their own names and reach their futures.
func TestATaskIsNamedByItsMessageIDWhateverItsTokensHold(t *testing.T) {
	e := newEnv(t)
	ctx := frayt.Context(t, 30*time.Second)
	nc, js := frayt.Connect(t, e.url)
	// The peer that serves "work" is listed in the pool directory but not
	// pulling yet: the worker lacking it hands its tasks on meanwhile.
	reg := tasks.NewRegistry()
	var mu sync.Mutex
	var ran []string
	tasks.Register(reg, "work", func(ctx context.Context, n int) (int, error) {
		ti, _ := tasks.CurrentTask(ctx)
		mu.Lock()
		ran = append(ran, ti.FutureID)
		mu.Unlock()
		return n, nil
	})
	e.listPeer(js, "has", reg)
	e.executor("lacks", basicRegistry(), nil)

	p, err := tasks.NewProducer(ctx, nc, tasks.ProducerOptions{Owner: "team~ml"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	futs := []*tasks.Future{p.Submit(ctx, "work", 1)}
	// Another client's task whose id holds '~', and a copy of one a
	// worker queued.
	arg, _ := objects.Marshal(2)
	rec, _ := objects.Marshal(taskwire.Task{V: taskwire.TaskVersion, Fn: "work", Arg: arg})
	for _, h := range []nats.Header{
		{jetstream.MsgIDHeader: {"team~ml.job~7"}},
		{jetstream.MsgIDHeader: {"team~ml.job~8~42"}, taskwire.HeaderPriorDeliveries: {"0"}},
	} {
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: taskwire.TaskSubject(tasks.DefaultPool), Data: rec, Header: h}); err != nil {
			t.Fatal(err)
		}
	}
	for _, fid := range []string{"team~ml.job~7", "team~ml.job~8"} {
		f, err := p.Future(fid)
		if err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
	}
	stream, err := js.Stream(ctx, broker.StreamTasks)
	if err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 20*time.Second, "every task handed on twice", func() bool {
		si, err := stream.Info(ctx)
		return err == nil && si.State.LastSeq >= uint64(3*len(futs))
	})
	e.executor("has", reg, nil)
	var want []string
	for i, f := range futs {
		var got int
		if err := f.Get(ctx, &got); err != nil || got != min(i+1, 2) {
			t.Fatalf("task %s: %d, %v; want %d", f.ID(), got, err, min(i+1, 2))
		}
		want = append(want, f.ID())
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(ran)
	slices.Sort(want)
	if !slices.Equal(ran, want) {
		t.Fatalf("ran tasks named %q, want %q", ran, want)
	}
}
