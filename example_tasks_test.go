package fray_test

import (
	"context"
	"fmt"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/tasks"
)

// A program that defines a function and runs it on an in-process cluster:
// with FRAY_CLUSTER_SPEC unset there is nothing to set up.
func Example_tasks() {
	ctx := context.Background()
	reg := tasks.NewRegistry()
	tasks.Register(reg, "square", func(_ context.Context, x int) (int, error) { return x * x, nil })

	c, err := fray.Connect(ctx, "local", fray.WithRegistry(reg))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	var futs []tasks.TypedFuture[int]
	for i := 1; i <= 4; i++ {
		futs = append(futs, fray.Run[int, int](ctx, c, "square", i))
	}
	ready, _, _ := fray.Wait(ctx, futs, len(futs), -1)
	sum := 0
	for _, f := range ready {
		v, err := f.Get(ctx)
		if err != nil {
			panic(err)
		}
		sum += v
	}
	fmt.Println("sum of squares:", sum)
	// Output: sum of squares: 30
}
