package tasks

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/taskwire"
)

// submittedAt is when f became pending.
func (f *Future) submittedAt(p *Producer) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return f.submitted
}

// sweeplessProducer is a producer on a fresh server whose own sweep never
// runs: a test drives check and sweepDue itself.
func sweeplessProducer(t *testing.T) *Producer {
	t.Helper()
	srv := frayt.Server(t)
	nc, _ := frayt.Connect(t, srv.ClientURL())
	o := ProducerOptions{}
	SetSweepTiming(&o, time.Hour, time.Hour, time.Hour)
	p, err := NewProducer(frayt.Context(t, 5*time.Second), nc, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// A sweep of many waiting futures takes seconds of lookups; a future that
// got its result meanwhile is not looked up, and one still waiting is.
func TestTheSweepSkipsTheLookupOfAFutureResolvedMeanwhile(t *testing.T) {
	p := sweeplessProducer(t)
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

func TestTheWaitListKeepsThePendingFuturesOldestFirst(t *testing.T) {
	var l waitList
	a, b, c, d := &Future{id: "a"}, &Future{id: "b"}, &Future{id: "c"}, &Future{id: "d"}
	order := func() string {
		var s string
		for f := l.oldest; f != nil; f = f.newer {
			s += f.id
		}
		var back string
		for f := l.newest; f != nil; f = f.older {
			back = f.id + back
		}
		if back != s {
			t.Fatalf("forward %q, backward %q", s, back)
		}
		return s
	}
	for _, f := range []*Future{a, b, c, d} {
		l.push(f)
	}
	if got := order(); got != "abcd" {
		t.Fatalf("got %q, want abcd", got)
	}
	for _, step := range []struct {
		f    *Future
		want string
	}{{b, "acd"}, {a, "cd"}, {d, "c"}, {c, ""}} {
		l.remove(step.f)
		if got := order(); got != step.want {
			t.Fatalf("after removing %s: got %q, want %q", step.f.id, got, step.want)
		}
	}
	l.push(b)
	if got := order(); got != "b" {
		t.Fatalf("got %q, want b", got)
	}
}

// A result the subscription never delivered is found by the sweep once
// its future is old enough; a future submitted later is not looked up
// before its own age, and is found after it (the walk that stops at the
// first young future misses no old one).
func TestTheSweepFindsAResultTheSubscriptionMissed(t *testing.T) {
	srv := frayt.Server(t)
	nc, js := frayt.Connect(t, srv.ClientURL())
	o := ProducerOptions{}
	const age = 300 * time.Millisecond
	SetSweepTiming(&o, 20*time.Millisecond, age, time.Hour)
	p, err := NewProducer(frayt.Context(t, 5*time.Second), nc, o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := frayt.Context(t, 10*time.Second)
	if err := p.sub.Unsubscribe(); err != nil { // results now reach only the sweep
		t.Fatal(err)
	}
	old := p.Submit(ctx, "nobody.serves.it", 1)
	if err := old.Queued(ctx); err != nil {
		t.Fatal(err)
	}
	store := func(f *Future) {
		data, err := taskwire.EncodeResult(&Result{V: taskwire.ResultVersion, ID: f.id, Fn: f.fn, Value: []byte{0x01}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, taskwire.ResultSubject(f.owner, f.id), data); err != nil {
			t.Fatal(err)
		}
	}
	store(old)
	young := p.Submit(ctx, "nobody.serves.it", 2)
	if err := young.Queued(ctx); err != nil {
		t.Fatal(err)
	}
	store(young)
	res, err := old.Result(ctx)
	if err != nil || res.ID != old.id {
		t.Fatalf("the sweep did not resolve the old future: %v, %v", res, err)
	}
	if young.isResolved() && time.Since(young.submittedAt(p)) < age {
		t.Fatal("the young future was looked up before its age")
	}
	if res, err := young.Result(ctx); err != nil || res.ID != young.id {
		t.Fatalf("the sweep did not resolve the young future once old: %v, %v", res, err)
	}
}

// A sweep looks up at most its budget of futures, oldest first; the next
// sweeps take the rest, each future once. After an election (or a
// reconnect) every waiting future is due, young ones too, a budget at a
// time.
func TestASweepLooksUpAtMostItsBudgetAndTheNextOnesTheRest(t *testing.T) {
	p := sweeplessProducer(t)
	ctx := frayt.Context(t, 10*time.Second)
	var futs []*Future
	for i := range 12 {
		f := p.Submit(ctx, "nobody.serves.it", i)
		if err := f.Queued(ctx); err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
	}
	const budget = 5
	s := p.newSweeper(sweepTiming{every: time.Millisecond, age: time.Minute, maxEvery: time.Hour, budget: budget})
	sweepAll := func(at time.Time, all []*Future) {
		t.Helper()
		want := len(all)
		seen := map[*Future]bool{}
		var sizes []int
		for range 5 {
			due := p.sweepDue(&s, at)
			sizes = append(sizes, len(due))
			for i, f := range due {
				if seen[f] {
					t.Fatalf("sweeps %v: %s looked up twice", sizes, f.id)
				}
				if i > 0 && due[i-1].seq > f.seq {
					t.Fatalf("sweeps %v: not oldest first", sizes)
				}
				seen[f] = true
			}
		}
		if want := []int{budget, budget, want - 2*budget, 0, 0}; fmt.Sprint(sizes) != fmt.Sprint(want) {
			t.Fatalf("sweeps took %v futures, want %v", sizes, want)
		}
		for _, f := range all {
			if !seen[f] {
				t.Fatalf("sweeps %v: %s never looked up", sizes, f.id)
			}
		}
	}
	// A minute on, every future is due: a budget per sweep.
	sweepAll(time.Now().Add(time.Minute+time.Second), futs)
	// An election: every future again, and one submitted just now too.
	young := p.Submit(ctx, "nobody.serves.it", 12)
	if err := young.Queued(ctx); err != nil {
		t.Fatal(err)
	}
	p.leaderChanges.Add(1)
	sweepAll(time.Now(), append(futs, young))
}
