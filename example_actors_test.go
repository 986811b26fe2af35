package fray_test

import (
	"context"
	"fmt"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/actors"
)

// A named actor shared by everyone who asks for it by name: the second
// CreateActor with GetIfExists joins the first one's instance.
func Example_actors() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := fray.Connect(ctx, "local") // in-process broker, worker and supervisor
	if err != nil {
		panic(err)
	}
	defer c.Close()

	trainer, err := c.CreateActor(ctx, actors.ClassCounter, "steps", 0, actors.GetIfExists(), actors.MaxRestarts(-1))
	if err != nil {
		panic(err)
	}
	rollout, err := c.CreateActor(ctx, actors.ClassCounter, "steps", 0, actors.GetIfExists())
	if err != nil {
		panic(err)
	}
	trainer.Call(ctx, "Add", 10) // asynchronous; calls run in arrival order
	n, err := fray.Call[int64](ctx, rollout, "Add", 5)
	fmt.Println(rollout, n, err)
	// Output: default/steps 15 <nil>
}
