package tasks

import (
	"context"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
)

// A sweep of many waiting futures takes seconds of lookups; a future that
// got its result meanwhile is not looked up, and one still waiting is.
func TestTheSweepSkipsTheLookupOfAFutureResolvedMeanwhile(t *testing.T) {
	srv := frayt.Server(t)
	nc, _ := frayt.Connect(t, srv.ClientURL())
	o := ProducerOptions{}
	SetSweepTiming(&o, time.Hour, time.Hour, time.Hour) // no sweep of its own
	p, err := NewProducer(frayt.Context(t, 5*time.Second), nc, o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := frayt.Context(t, 10*time.Second)
	f := p.Submit(ctx, "nobody.serves.it", 1) // no worker: it waits
	if err := f.Queued(ctx); err != nil {
		t.Fatal(err)
	}
	if !p.check(ctx, f) {
		t.Fatal("a waiting future was not looked up")
	}
	if f.isResolved() {
		t.Fatal("a lookup resolved a future whose task never ran")
	}
	p.forget(f.id)
	f.resolve(&Result{ID: f.id}, nil) // as the subscription would
	if p.check(ctx, f) {
		t.Fatal("a future resolved meanwhile was looked up again")
	}
	if res, err := f.Result(context.Background()); err != nil || res.ID != f.id {
		t.Fatalf("the first result must stand: %v, %v", res, err)
	}
}
