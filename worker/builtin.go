package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/frayhq/fray/tasks"
)

// Built-in handler names, registered by RegisterBuiltins and served by
// every fray-worker.
const (
	FnNoop  = "fray.noop"  // returns nil; for benchmarks
	FnEcho  = "fray.echo"  // returns its argument
	FnSleep = "fray.sleep" // sleeps for its argument in seconds, returns it
)

// RegisterBuiltins adds fray.noop, fray.echo and fray.sleep to reg.
func RegisterBuiltins(reg *tasks.Registry) error {
	if err := reg.Handle(FnNoop, func(context.Context, []byte) (any, error) { return nil, nil }); err != nil {
		return err
	}
	if err := tasks.RegisterSafely(reg, FnEcho, func(_ context.Context, v any) (any, error) { return v, nil }); err != nil {
		return err
	}
	return tasks.RegisterSafely(reg, FnSleep, func(ctx context.Context, secs float64) (float64, error) {
		if secs < 0 || secs > 7*24*3600 {
			return 0, fmt.Errorf("fray.sleep: %v seconds: want 0 to 604800", secs)
		}
		t := time.NewTimer(time.Duration(secs * float64(time.Second)))
		defer t.Stop()
		select {
		case <-t.C:
			return secs, nil
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
	})
}
