package langrt_test

import (
	"context"
	"testing"
)

// BenchmarkPythonTaskRoundTrip runs the no-op Python task through the
// pipes from as many goroutines as processes: the runtime's own cost per
// task, without NATS.
func BenchmarkPythonTaskRoundTrip(b *testing.B) {
	_, reg, _ := start(b, 4)
	h, _ := reg.Lookup("rt.noop")
	ctx := context.Background()
	b.SetParallelism(1)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h(ctx, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
