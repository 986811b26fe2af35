package tasks

import "time"

// Observer hears what an executor does with each task, for metrics. Its
// methods run on the goroutine handling the task, once per event, so they
// must return at once: count with atomics, never block, never allocate per
// call. fn is the task's function name as submitted (a bounded set: the
// registered functions, or names refused as unknown).
type Observer interface {
	// TaskStarted: a delivery of fn took a slot after waiting queued since
	// its submission (by the producer's clock; never negative).
	TaskStarted(fn string, queued time.Duration)
	// TaskFinished: an attempt of fn ended with a result after running for
	// ran; kind is "" on success, else the ErrorInfo.Kind it failed with.
	TaskFinished(fn string, ran time.Duration, kind string)
	// TaskRetried: an attempt of fn failed with kind after running for ran,
	// and the task will run again after its backoff.
	TaskRetried(fn string, ran time.Duration, kind string)
}

// noObserver is the Observer of an executor given none.
type noObserver struct{}

func (noObserver) TaskStarted(string, time.Duration)          {}
func (noObserver) TaskFinished(string, time.Duration, string) {}
func (noObserver) TaskRetried(string, time.Duration, string)  {}

// sinceMS is the time from unix ms to now, never negative.
func sinceMS(ms int64, now time.Time) time.Duration {
	if ms <= 0 {
		return 0
	}
	return max(0, now.Sub(time.UnixMilli(ms)))
}
