package dispatcher_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/jobs"
)

func TestFollowDeliversAHundredThousandLinesInOrder(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 2, nil)
	const n = 100000
	h := c.submit(sh("chatty", "seq 1 "+strconv.Itoa(n)))
	next := 1
	for line, err := range h.Follow(c.ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if line.Text != strconv.Itoa(next) {
			t.Fatalf("line %d is %q", next, line.Text)
		}
		next++
	}
	if next != n+1 {
		t.Fatalf("got %d lines, want %d", next-1, n)
	}
	tail, err := h.Logs(c.ctx, 3)
	if err != nil || len(tail) != 3 || tail[2].Text != strconv.Itoa(n) {
		t.Fatalf("tail %v %v", tail, err)
	}
}

func TestFuncEntrypointRunsARegisteredFunction(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 2, nil, jobs.RunnerOptions{Funcs: map[string]jobs.JobFunc{
		"greet": func(ctx context.Context, env jobs.FuncEnv) error {
			fmt.Fprintf(env.Log, "hello %s from task %d\n", env.Arg, env.Task)
			return nil
		},
	}})
	h := c.submit(jobs.JobRequest{Name: "fn", Entrypoint: jobs.Func("greet", []byte("fray"))})
	if r := c.wait(h); r.Status != jobs.StatusSucceeded {
		t.Fatalf("%s: %s", r.Status, r.Error)
	}
	l, err := h.Logs(c.ctx, 0)
	if err != nil || len(l) != 1 || l[0].Text != "hello fray from task 0" {
		t.Fatalf("logs %v %v", l, err)
	}
	r := c.wait(c.submit(jobs.JobRequest{Name: "nofn", Entrypoint: jobs.Func("missing", nil)}))
	if r.Status != jobs.StatusFailed {
		t.Fatalf("missing func: %s", r.Status)
	}
}

func TestBinaryOutputIsLoggedAsValidText(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 2, nil)
	h := c.submit(sh("binary", `printf 'a\377b\nlong'`))
	c.wait(h)
	l, err := h.Logs(c.ctx, 0)
	if err != nil || len(l) != 2 || l[0].Text != "a\uFFFDb" || l[1].Text != "long" {
		t.Fatalf("logs %+v %v", l, err)
	}
}
