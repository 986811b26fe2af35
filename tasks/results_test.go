package tasks_test

import (
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/tasks"
)

// Each result reads as its worker wrote it: a producer that expects the
// pool, worker and function of the result before (to decode without
// copying them) still reads every result's own, whichever order results
// from different pools, workers and functions arrive in.
func TestEachResultReadsAsItsWorkerWroteIt(t *testing.T) {
	e := newEnv(t)
	e.executor("w-default", basicRegistry(), nil)
	e.executor("w-gpu", basicRegistry(), func(o *tasks.ExecutorOptions) { o.Pool = "gpu" })
	p := e.producer()
	ctx := frayt.Context(t, 20*time.Second)
	type want struct{ fn, pool, worker string }
	var futs []*tasks.Future
	var wants []want
	for i := range 40 {
		w := want{"add", tasks.DefaultPool, "w-default"}
		if i%3 == 1 {
			w.pool, w.worker = "gpu", "w-gpu"
		}
		var f *tasks.Future
		if i%2 == 0 {
			f = p.Submit(ctx, "add", [2]int{i, 1}, tasks.Pool(w.pool))
		} else {
			w.fn = "len"
			f = p.Submit(ctx, "len", make([]byte, i), tasks.Pool(w.pool))
		}
		futs, wants = append(futs, f), append(wants, w)
	}
	for i, f := range futs {
		var n int
		if err := f.Get(ctx, &n); err != nil {
			t.Fatal(err)
		}
		res, _ := f.Result(ctx)
		got := want{res.Fn, res.Pool, res.Worker}
		if got != wants[i] || res.ID != f.TaskID() || n != i+1 && i%2 == 0 || n != i && i%2 == 1 {
			t.Fatalf("task %d: result %+v (value %d), want %+v for task %s", i, res, n, wants[i], f.TaskID())
		}
	}
}
