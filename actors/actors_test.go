package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/objects"
)

type badShape struct{}

func (b *badShape) Good(context.Context, int) (int, error)  { return 0, nil }
func (b *badShape) NoContext(int) (int, error)              { return 0, nil }
func (b *badShape) TwoArgs(context.Context, int, int) error { return nil }

func TestRegisterRejectsMethodOfUnsupportedShapeNamingIt(t *testing.T) {
	reg := NewRegistry()
	err := RegisterSafely(reg, "bad", func(context.Context, struct{}) (*badShape, error) { return &badShape{}, nil })
	if err == nil {
		t.Fatal("registered a class with bad method shapes")
	}
	for _, want := range []string{"NoContext", "TwoArgs", "func(context.Context, In) (Out, error)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "Good ") {
		t.Errorf("error %q blames the good method", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Register did not panic")
		}
	}()
	Register(reg, "bad", func(context.Context, struct{}) (*badShape, error) { return &badShape{}, nil })
}

func TestCallReturnsMethodResultAndListShowsCallsServed(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), "w1", nil, testRegistry(t))
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	h, err := c.CreateActor(ctx, ClassCounter, "counter", 5)
	if err != nil {
		t.Fatal(err)
	}
	if got := call[int64](t, ctx, h, "Add", 2); got != 7 {
		t.Fatalf("Add = %d, want 7", got)
	}
	if got := call[int64](t, ctx, h, "Get", nil); got != 7 {
		t.Fatalf("Get = %d, want 7", got)
	}
	frayt.Eventually(t, 5*time.Second, "record shows 2 calls served", func() bool {
		recs, err := c.ListActors(ctx, "default")
		return err == nil && len(recs) == 1 && recs[0].Calls == 2 && recs[0].State == StateReady && recs[0].Host == "w1"
	})
}

func TestTenCallersMakeExactlyTenThousandIncrements(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), "w1", nil, testRegistry(t))
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 60*time.Second)
	h, err := c.CreateActor(ctx, ClassCounter, "shared", 0)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each caller pipelines its increments, then reads them all.
			fs := make([]*Future, 1000)
			for i := range fs {
				fs[i] = h.Call(ctx, "Add", 1)
			}
			for _, f := range fs {
				if err := f.Get(ctx, nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := call[int64](t, ctx, h, "Get", nil); got != 10000 {
		t.Fatalf("count = %d, want exactly 10000", got)
	}
}

func TestCallsFromOneCallerRunInArrivalOrder(t *testing.T) {
	srv := frayt.Server(t)
	reg := NewRegistry()
	Register(reg, "test.Log", func(context.Context, struct{}) (*orderLog, error) { return &orderLog{}, nil })
	startWorker(t, srv.ClientURL(), "w1", nil, reg)
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	h, err := c.CreateActor(ctx, "test.Log", "log", nil)
	if err != nil {
		t.Fatal(err)
	}
	fs := make([]*Future, 500)
	for i := range fs {
		fs[i] = h.Call(ctx, "Append", i)
	}
	for _, f := range fs {
		if err := f.Get(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	got := call[[]int](t, ctx, h, "All", nil)
	for i, v := range got {
		if v != i {
			t.Fatalf("call %d ran at position %d", v, i)
		}
	}
}

type orderLog struct{ seen []int }

func (l *orderLog) Append(_ context.Context, i int) error { l.seen = append(l.seen, i); return nil }
func (l *orderLog) All(context.Context) ([]int, error)    { return l.seen, nil }

func TestCreateOfLiveNameIsErrExistsAndOtherClassNamesBoth(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), "w1", nil, testRegistry(t))
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	if _, err := c.CreateActor(ctx, ClassCounter, "x", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateActor(ctx, ClassCounter, "x", 0); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	_, err := c.CreateActor(ctx, ClassEcho, "x", nil, GetIfExists())
	if !errors.Is(err, ErrClassMismatch) || !strings.Contains(err.Error(), ClassCounter) || !strings.Contains(err.Error(), ClassEcho) {
		t.Fatalf("create with other class: %v, want ErrClassMismatch naming both", err)
	}
	if _, err := c.GetActor(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetActor of a missing name: %v, want ErrNotFound", err)
	}
	h, err := c.GetActor(ctx, "x")
	if err != nil || h.Class() != ClassCounter {
		t.Fatalf("GetActor: %v %v", h, err)
	}
}

func TestMethodErrorsPanicsAndBadInputReachCallerAndActorKeepsServing(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), "w1", nil, testRegistry(t))
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	h, err := c.CreateActor(ctx, ClassEcho, "echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	var re *RemoteError
	err = h.Call(ctx, "Fail", "boom").Get(ctx, nil)
	if !errors.As(err, &re) || re.Message != "boom" || re.Method != "Fail" || re.Host != "w1" || re.Type != "*errors.errorString" {
		t.Fatalf("method error: %#v", err)
	}
	err = h.Call(ctx, "Panic", "kaboom").Get(ctx, nil)
	if !errors.As(err, &re) || re.Type != TypePanic || !strings.Contains(re.Message, "kaboom") {
		t.Fatalf("panic: %v", err)
	}
	err = h.Call(ctx, "Nope", 1).Get(ctx, nil)
	if !errors.Is(err, ErrNoSuchMethod) || !strings.Contains(err.Error(), "Echo") {
		t.Fatalf("missing method: %v", err)
	}
	err = h.Call(ctx, "Fail", map[string]int{"not": 1}).Get(ctx, nil)
	if !errors.Is(err, ErrBadArgument) || !strings.Contains(err.Error(), "string") {
		t.Fatalf("wrong argument type: %v", err)
	}
	err = h.Call(ctx, "Where", 3).Get(ctx, nil)
	if !errors.Is(err, ErrBadArgument) {
		t.Fatalf("argument to a method without one: %v", err)
	}
	msg, err := c.nc.Request(callSubject("default", "echo"), []byte("\xff\x00garbage"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var rep replyMsg
	if err := objects.Unmarshal(msg.Data, &rep); err != nil || rep.Err == nil || rep.Err.Type != TypeBadArgument {
		t.Fatalf("malformed payload reply: %+v %v", rep, err)
	}
	if got := call[string](t, ctx, h, "Echo", "still here"); got != "still here" {
		t.Fatalf("Echo = %q", got)
	}
}

func TestGroupOfEightAcrossTwoWorkersReportsTheFailedMember(t *testing.T) {
	srv := frayt.Server(t)
	reg := testRegistry(t)
	startWorker(t, srv.ClientURL(), "wa", nil, reg)
	startWorker(t, srv.ClientURL(), "wb", nil, reg)
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	three := 3
	g, err := c.CreateActorGroup(ctx, ClassEcho, "grp", 8, EchoConfig{FailIndex: &three})
	if err != nil {
		t.Fatal(err)
	}
	ready, err := g.WaitReady(ctx, 8, 20*time.Second)
	var ge *GroupError
	if !errors.As(err, &ge) || len(ge.Failed) != 1 || ge.Failed[3] == nil || !strings.Contains(ge.Failed[3].Error(), "member 3") {
		t.Fatalf("WaitReady error: %v", err)
	}
	if len(ready) != 7 || g.ReadyCount() != 7 || !g.IsDone() {
		t.Fatalf("ready %d, ReadyCount %d, done %v", len(ready), g.ReadyCount(), g.IsDone())
	}
	hosts := map[string]int{}
	for _, h := range ready {
		hosts[call[string](t, ctx, h, "Where", nil)]++
	}
	if len(hosts) != 2 {
		t.Fatalf("members on %v, want both workers", hosts)
	}
	if n := len(g.DiscoverNew()); n != 7 {
		t.Fatalf("DiscoverNew = %d, want 7", n)
	}
	if n := len(g.DiscoverNew()); n != 0 {
		t.Fatalf("second DiscoverNew = %d, want 0", n)
	}
	if err := g.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 5*time.Second, "members stopped", func() bool {
		recs, _ := c.ListActors(ctx, "default")
		for _, r := range recs {
			if r.State != StateStopped {
				return false
			}
		}
		return true
	})
}

func TestNonPreemptibleActorLandsOnlyOnPreemptibleFalseWorker(t *testing.T) {
	srv := frayt.Server(t)
	reg := testRegistry(t)
	startWorker(t, srv.ClientURL(), "spot", map[string]string{"preemptible": "true"}, reg)
	startWorker(t, srv.ClientURL(), "steady", map[string]string{"preemptible": "false"}, reg)
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	for i := range 6 {
		h, err := c.CreateActor(ctx, ClassEcho, fmt.Sprintf("np-%d", i), nil, NonPreemptible())
		if err != nil {
			t.Fatal(err)
		}
		if where := call[string](t, ctx, h, "Where", nil); where != "steady" {
			t.Fatalf("non-preemptible actor %d placed on %s", i, where)
		}
	}
}

func TestNonPreemptibleWithoutSuchWorkerFailsClearlyAfterPlacementTimeout(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), "spot", map[string]string{"preemptible": "true"}, testRegistry(t))
	c := newClient(t, srv.ClientURL(), ClientOptions{PlacementTimeout: time.Second})
	ctx := frayt.Context(t, 30*time.Second)
	start := time.Now()
	_, err := c.CreateActor(ctx, ClassEcho, "np", nil, NonPreemptible())
	if !errors.Is(err, ErrNoEligibleWorker) || !strings.Contains(err.Error(), "preemptible=false") {
		t.Fatalf("err = %v, want ErrNoEligibleWorker mentioning preemptible=false", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s", d)
	}
	// The name is free again.
	if _, err := c.GetActor(ctx, "np"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetActor after failed create: %v", err)
	}
}

func TestCreateOfClassNoLiveWorkerOffersFailsAtOnceNamingWhatThePoolOffers(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), "w1", nil, testRegistry(t))
	// A placement timeout far beyond the context's deadline: only failing
	// at once, not waiting for a worker, can give ErrUnknownClass.
	c := newClient(t, srv.ClientURL(), ClientOptions{PlacementTimeout: time.Hour})
	ctx := frayt.Context(t, 20*time.Second)
	_, err := c.CreateActor(ctx, "my.Typo", "t", nil)
	if !errors.Is(err, ErrUnknownClass) || !strings.Contains(err.Error(), ClassCounter) {
		t.Fatalf("err = %v, want ErrUnknownClass listing %s", err, ClassCounter)
	}
	if _, err := c.GetActor(ctx, "t"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetActor after failed create: %v", err)
	}
}

func TestCreateBeforeAnyWorkerWaitsForOneToStart(t *testing.T) {
	srv := frayt.Server(t)
	c := newClient(t, srv.ClientURL(), ClientOptions{PlacementTimeout: time.Minute})
	ctx := frayt.Context(t, 30*time.Second)
	type created struct {
		h   *Handle
		err error
	}
	done := make(chan created, 1)
	go func() {
		h, err := c.CreateActor(ctx, ClassCounter, "early", 0)
		done <- created{h, err}
	}()
	frayt.Eventually(t, 10*time.Second, "create claimed the name", func() bool {
		r, _, err := getRecord(ctx, c.kv, recordKey(c.Namespace(), "early"))
		return err == nil && r.State == StatePlacing
	})
	startWorker(t, srv.ClientURL(), "w1", nil, testRegistry(t))
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if n := call[int64](t, ctx, r.h, "Add", 2); n != 2 {
		t.Fatalf("Add = %d", n)
	}
}

func TestConstructorErrorReachesCreatorAndFreesName(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), "w1", nil, testRegistry(t))
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	minusOne := -1
	_, err := c.CreateActor(ctx, ClassEcho, "bad", EchoConfig{FailIndex: &minusOne})
	var re *RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Message, "fails as configured") {
		t.Fatalf("err = %v", err)
	}
	if _, err := c.CreateActor(ctx, ClassEcho, "bad", nil); err != nil {
		t.Fatalf("name not freed: %v", err)
	}
}

func TestHandleEncodesToItsNameAndResolvesThroughContextClient(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), "w1", nil, testRegistry(t))
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	h, err := c.CreateActor(ctx, ClassCounter, "c1", 0, Namespace("rl"))
	if err != nil {
		t.Fatal(err)
	}
	type taskArg struct {
		H *Handle `cbor:"h" json:"h"`
	}
	js, _ := json.Marshal(taskArg{H: h})
	if string(js) != `{"h":"rl/c1"}` {
		t.Fatalf("JSON %s", js)
	}
	cb, err := objects.Marshal(taskArg{H: h})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := objects.Marshal(map[string]string{"h": "rl/c1"})
	if !bytes.Equal(cb, want) {
		t.Fatalf("CBOR %x, want %x", cb, want)
	}
	var back taskArg
	if err := objects.Unmarshal(cb, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.H.Call(ctx, "Add", 1).Get(ctx, nil); !errors.Is(err, ErrNotBound) {
		t.Fatalf("unbound call: %v", err)
	}
	other := newClient(t, srv.ClientURL())
	if got := call[int64](t, ContextWithClient(ctx, other), back.H, "Add", 1); got != 1 {
		t.Fatalf("Add via context client = %d", got)
	}
	var fromJSON taskArg
	if err := json.Unmarshal(js, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if got := call[int64](t, ctx, fromJSON.H.Bind(other), "Add", 1); got != 2 {
		t.Fatalf("Add via Bind = %d", got)
	}
}

type greeter struct{ prefix string }

func (g *greeter) Greet(_ context.Context, name string) (string, error) { return g.prefix + name, nil }

func TestHostActorServesFromCallingProcessUntilShutdown(t *testing.T) {
	srv := frayt.Server(t)
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	hosted, err := c.HostActor(ctx, "test.Greeter", "greeter", &greeter{prefix: "hi "})
	if err != nil {
		t.Fatal(err)
	}
	other := newClient(t, srv.ClientURL())
	h, err := other.GetActor(ctx, "greeter")
	if err != nil {
		t.Fatal(err)
	}
	if got := call[string](t, ctx, h, "Greet", "ada"); got != "hi ada" {
		t.Fatalf("Greet = %q", got)
	}
	if err := hosted.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	err = h.Call(ctx, "Greet", "bob").Get(ctx, nil)
	if !errors.Is(err, ErrActorUnavailable) {
		t.Fatalf("call after shutdown: %v", err)
	}
	if _, err := c.HostActor(ctx, "test.Greeter", "greeter", &greeter{}); err != nil {
		t.Fatalf("name not reusable after shutdown: %v", err)
	}
}

func TestErrStopEndsActorCleanlyAndIsNotRestarted(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), "w1", nil, testRegistry(t))
	startSupervisor(t, srv.ClientURL())
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	h, err := c.CreateActor(ctx, ClassEcho, "stopper", nil, MaxRestarts(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Call(ctx, "Stop", nil).Get(ctx, nil); err != nil {
		t.Fatalf("Stop call: %v", err)
	}
	rec, err := h.Record(ctx)
	if err != nil || rec.State != StateStopped {
		t.Fatalf("record after ErrStop: %+v %v", rec, err)
	}
	if err := h.Call(ctx, "Echo", 1).Get(ctx, nil); !errors.Is(err, ErrActorUnavailable) {
		t.Fatalf("call after stop: %v", err)
	}
}

func TestFailRestartsActorOnNewEpochWhileRestartsRemain(t *testing.T) {
	srv := frayt.Server(t)
	startWorker(t, srv.ClientURL(), "w1", nil, testRegistry(t))
	startSupervisor(t, srv.ClientURL())
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	h, err := c.CreateActor(ctx, ClassEcho, "crashy", nil, MaxRestarts(1))
	if err != nil {
		t.Fatal(err)
	}
	var re *RemoteError
	if err := h.Call(ctx, "Crash", "bad state").Get(ctx, nil); !errors.As(err, &re) {
		t.Fatalf("Crash: %v", err)
	}
	// Calls wait for the new instance.
	if got := call[string](t, ctx, h, "Echo", "again"); got != "again" {
		t.Fatalf("Echo after restart = %q", got)
	}
	rec, err := h.Record(ctx)
	if err != nil || rec.Epoch != 2 || rec.Restarts != 1 {
		t.Fatalf("record: %+v %v", rec, err)
	}
	// No restart left: the second failure is final.
	_ = h.Call(ctx, "Crash", "again").Get(ctx, nil)
	if err := h.Call(ctx, "Echo", 1).Get(ctx, nil); !errors.Is(err, ErrActorUnavailable) {
		t.Fatalf("call after final failure: %v", err)
	}
}

func TestSupervisorRestartsActorOnAnotherWorkerWhenHostDies(t *testing.T) {
	srv := frayt.Server(t)
	reg := testRegistry(t)
	wa := startWorker(t, srv.ClientURL(), "wa", nil, reg)
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 60*time.Second)
	h, err := c.CreateActor(ctx, ClassCounter, "survivor", 0, MaxRestarts(1))
	if err != nil {
		t.Fatal(err)
	}
	startWorker(t, srv.ClientURL(), "wb", nil, reg)
	startSupervisor(t, srv.ClientURL())
	first := call[string](t, ctx, h, "ID", nil)

	// Keep calling while the host dies.
	stop := make(chan struct{})
	results := make(chan error, 1)
	var ok, unavailable atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				results <- nil
				return
			default:
			}
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			err := h.Call(cctx, "Add", 1).Get(cctx, nil)
			cancel()
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrActorUnavailable):
				unavailable.Add(1)
			default:
				results <- err
				return
			}
		}
	}()
	frayt.Eventually(t, 5*time.Second, "calls flowing", func() bool { return ok.Load() >= 50 })
	_, js := frayt.Connect(t, srv.ClientURL())
	killed := time.Now()
	wa.kill(t, js)
	frayt.Eventually(t, testTTL+5*time.Second, "actor serves again from wb", func() bool {
		rec, err := h.Record(ctx)
		return err == nil && rec.State == StateReady && rec.Host == "wb" && rec.Epoch == 2
	})
	t.Logf("restarted %s after the kill", time.Since(killed))
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if second := call[string](t, cctx, h, "ID", nil); second == first {
		t.Fatal("same instance id after restart")
	}
	before := ok.Load()
	frayt.Eventually(t, 5*time.Second, "the calling loop succeeds again", func() bool { return ok.Load() > before+50 })
	close(stop)
	if err := <-results; err != nil {
		t.Fatalf("caller saw %v; want only successes or ErrActorUnavailable", err)
	}
	t.Logf("calls: %d ok, %d unavailable", ok.Load(), unavailable.Load())
}

// A lost actor waits for an eligible worker for the supervisor's whole
// placement timeout, even when that outlasts the claim's margin: its
// restart claim must not expire mid-wait and count as a second loss.
func TestRestartWaitsForAWorkerLongerThanTheClaimMargin(t *testing.T) {
	srv := frayt.Server(t)
	reg := testRegistry(t)
	wa := startWorker(t, srv.ClientURL(), "wa", nil, reg)
	c := newClient(t, srv.ClientURL())
	ctx := frayt.Context(t, 60*time.Second)
	h, err := c.CreateActor(ctx, ClassCounter, "patient", 0, MaxRestarts(3))
	if err != nil {
		t.Fatal(err)
	}
	const margin = time.Second
	nc, js := frayt.Connect(t, srv.ClientURL())
	sup := NewSupervisor(nc, js, SupervisorOptions{PlacementTimeout: 15 * time.Second, claimMargin: margin})
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(sctx) }()
	t.Cleanup(func() { stop(); <-done })

	wa.kill(t, js)
	var claimed time.Time
	frayt.Eventually(t, testTTL+5*time.Second, "restart claimed, waiting for a worker", func() bool {
		rec, err := h.Record(ctx)
		if err == nil && rec.State == StateRestarting && claimed.IsZero() {
			claimed = time.Now()
		}
		return !claimed.IsZero()
	})
	time.Sleep(time.Until(claimed.Add(3 * margin))) // the fault: no eligible worker for three claim margins
	startWorker(t, srv.ClientURL(), "wb", nil, reg)
	frayt.Eventually(t, 10*time.Second, "actor ready on wb", func() bool {
		rec, err := h.Record(ctx)
		return err == nil && rec.State == StateReady && rec.Host == "wb"
	})
	rec, err := h.Record(ctx)
	if err != nil || rec.Epoch != 2 || rec.Restarts != 1 {
		t.Fatalf("record %+v, %v: want epoch 2 after exactly one restart", rec, err)
	}
}
