package bench

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// selfCPU is this process's user and system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// schedHist is a reading of the Go runtime's histogram of how long
// runnable goroutines waited to be scheduled.
type schedHist struct {
	counts  []uint64
	buckets []float64 // boundaries in seconds; len(counts)+1
}

const schedMetric = "/sched/latencies:seconds"

func schedLatencies() schedHist {
	s := []metrics.Sample{{Name: schedMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return schedHist{}
	}
	h := s[0].Value.Float64Histogram()
	return schedHist{counts: slices.Clone(h.Counts), buckets: h.Buckets}
}

// since is the histogram of the waits between an earlier reading and h.
func (h schedHist) since(earlier schedHist) schedHist {
	d := schedHist{counts: slices.Clone(h.counts), buckets: h.buckets}
	if len(earlier.counts) == len(d.counts) {
		for i := range d.counts {
			d.counts[i] -= earlier.counts[i]
		}
	}
	return d
}

// quantile is the upper bound of the bucket holding quantile q (q = 1:
// the largest wait; 0 when the histogram is empty).
func (h schedHist) quantile(q float64) time.Duration {
	var total uint64
	for _, c := range h.counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	want := max(uint64(math.Ceil(q*float64(total))), 1) - 1 // the rank, from 0
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen > want {
			up := h.buckets[i+1]
			if up > 3600 { // the last bucket is unbounded
				up = h.buckets[i]
			}
			return time.Duration(up * float64(time.Second))
		}
	}
	return 0
}

// ProcRunQueueWait is the time the threads of process pid have spent
// runnable but waiting for a CPU (Linux's /proc/<pid>/task/*/schedstat),
// summed over its live threads: how much the machine, not the process,
// held it back.
func ProcRunQueueWait(pid int) (time.Duration, bool) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, false
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue
		}
		wait, err := strconv.ParseInt(f[1], 10, 64)
		if err == nil {
			sum += time.Duration(wait)
		}
	}
	return sum, true
}
