package bench

import (
	"math"
	"testing"
	"time"
)

func TestSchedQuantilesReadTheWaitsBetweenTwoReadings(t *testing.T) {
	buckets := []float64{0, 0.001, 0.01, 0.1, math.Inf(1)}
	before := schedHist{counts: []uint64{5, 5, 0, 0}, buckets: buckets}
	after := schedHist{counts: []uint64{5, 103, 1, 1}, buckets: buckets}
	d := after.since(before)
	// 98 waits of 1-10 ms, one of 10-100 ms, one of 100 ms or more.
	if got := d.quantile(0.5); got != 10*time.Millisecond {
		t.Errorf("p50 = %v, want 10ms", got)
	}
	if got := d.quantile(0.98); got != 10*time.Millisecond {
		t.Errorf("p98 = %v, want 10ms", got)
	}
	if got := d.quantile(0.99); got != 100*time.Millisecond {
		t.Errorf("p99 = %v, want 100ms", got)
	}
	if got := d.quantile(1); got != 100*time.Millisecond {
		t.Errorf("max = %v, want 100ms (the unbounded bucket's lower bound)", got)
	}
	if got := before.since(before).quantile(0.5); got != 0 {
		t.Errorf("no waits: %v, want 0", got)
	}
}
