// Package dispatchtest runs fray's dispatcher for the tests of its external
// backends against real Ray and Iris heads: an in-process broker, a jobs
// client, dispatchers a test stops and starts again on that broker, a
// recorder of what they log, and a TCP proxy that cuts a head off.
//
//	c := dispatchtest.New(t)
//	stop := c.Start(dispatcher.Options{Backends: []dispatcher.Backend{b}, DefaultBackend: b.Name()})
//	h := c.Submit(jobs.JobRequest{Name: "hello", Entrypoint: jobs.Command("true")})
//	rec := c.Wait(h)
package dispatchtest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/jobs"
)

// Cluster is a broker with a jobs client; dispatchers come and go on it.
type Cluster struct {
	t   testing.TB
	url string
	// Ctx ends with the test (10 minutes at most).
	Ctx context.Context
	// Jobs submits in namespace "test".
	Jobs *jobs.Client
	// Log records what every dispatcher Start runs logs (unless its
	// Options name a Logger).
	Log *LogRecorder
}

// New starts a provisioned broker and a jobs client, both closed when the
// test ends. No dispatcher runs yet.
func New(t testing.TB) *Cluster {
	t.Helper()
	srv := frayt.Server(t)
	c := &Cluster{t: t, url: srv.ClientURL(), Ctx: frayt.Context(t, 10*time.Minute), Log: &LogRecorder{}}
	nc, js := frayt.Connect(t, c.url)
	jc, err := jobs.NewClient(c.Ctx, nc, js, jobs.ClientOptions{Namespace: "test", Parent: "-"})
	if err != nil {
		t.Fatal(err)
	}
	c.Jobs = jc
	return c
}

// Start runs a dispatcher with o on the cluster (see Run), its log
// recorded in c.Log unless o names a Logger.
func (c *Cluster) Start(o dispatcher.Options) (stop func()) {
	c.t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(c.Log)
	}
	return Run(c.t, c.url, o)
}

// Run runs a dispatcher with o on its own connection to the broker at url
// until stop is called (or the test ends) and returns once it serves
// submits. stop waits for the dispatcher's Run to return; calling it again
// does nothing.
func Run(t testing.TB, url string, o dispatcher.Options) (stop func()) {
	t.Helper()
	nc, js := frayt.Connect(t, url)
	d, err := dispatcher.New(nc, js, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.Run(ctx); err != nil {
			t.Errorf("dispatcher: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done; nc.Close() }) }
	t.Cleanup(stop)
	select {
	case <-d.Ready():
	case <-done:
		t.Fatal("the dispatcher stopped before it was ready")
	case <-time.After(time.Minute): // its first reads of the store, on a loaded machine
		t.Fatal("the dispatcher was not ready within a minute")
	}
	return stop
}

// Submit submits req, failing the test on an error.
func (c *Cluster) Submit(req jobs.JobRequest) *jobs.Handle {
	c.t.Helper()
	h, err := c.Jobs.Submit(c.Ctx, req)
	if err != nil {
		c.t.Fatalf("submit %s: %v", req.Name, err)
	}
	return h
}

// Info is the job's record now.
func (c *Cluster) Info(h *jobs.Handle) *jobs.Record {
	c.t.Helper()
	r, err := h.Info(c.Ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

// Await waits up to d for the job's record to satisfy cond and returns it.
func (c *Cluster) Await(h *jobs.Handle, d time.Duration, what string, cond func(*jobs.Record) bool) *jobs.Record {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		r, err := h.Info(c.Ctx)
		if err == nil && cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("not true within %s: %s: %s; the record: %s; the dispatchers logged:\n%s", d, h.ID(), what, describe(r, err), c.Log.Dump())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// describe is what a test failing on a record says of it.
func describe(r *jobs.Record, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%s (pending %q, error %q, external id %q, unreachable %q)", r.Status, r.PendingReason, r.Error, r.ExternalID, r.UnreachableError)
}

// Wait waits up to 3 minutes for the job to finish and returns its record.
func (c *Cluster) Wait(h *jobs.Handle) *jobs.Record {
	c.t.Helper()
	return c.Await(h, 3*time.Minute, "finishes", func(r *jobs.Record) bool { return r.Status.Terminal() })
}

// Lines is the job's mirrored output, one string a line.
func (c *Cluster) Lines(h *jobs.Handle) []string {
	c.t.Helper()
	ls, err := h.Logs(c.Ctx, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Text
	}
	return out
}

// LogRecorder is a slog.Handler that keeps every record's level and
// message.
type LogRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *LogRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *LogRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}

func (l *LogRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }

func (l *LogRecorder) WithGroup(string) slog.Handler { return l }

// Count is how many records of level have a message containing msg.
func (l *LogRecorder) Count(level slog.Level, msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if r.Level == level && strings.Contains(r.Message, msg) {
			n++
		}
	}
	return n
}

// Dump is every record as "LEVEL message", one a line, for failure output.
func (l *LogRecorder) Dump() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, r := range l.recs {
		b.WriteString(r.Level.String() + " " + r.Message)
		r.Attrs(func(a slog.Attr) bool {
			b.WriteString(" " + a.String())
			return true
		})
		b.WriteString("\n")
	}
	return b.String()
}
