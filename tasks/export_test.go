package tasks

import (
	"testing"
	"time"
)

// SetSweepTiming sets the result safety net's timing on o (see
// Producer.sweep): how often it runs, its first look at a waiting future,
// and the cap of its doubling looks.
func SetSweepTiming(o *ProducerOptions, every, age, maxEvery time.Duration) {
	o.sweep = sweepTiming{every: every, age: age, maxEvery: maxEvery}
}

// SetTimeoutGrace sets how long a timed-out handler may take to return
// before its attempt ends without it (6 s by default).
func SetTimeoutGrace(o *ExecutorOptions, d time.Duration) { o.timeoutGrace = d }

// SetSubmitRetryDelays sets the pauses before each resubmission of a task
// whose publish met no JetStream or no PubAck (about 8 s in all by
// default); after the last, the submission fails.
func SetSubmitRetryDelays(o *ProducerOptions, delays ...time.Duration) { o.submitRetry = delays }

// SetParking sets parking's sizes until t ends: a pool of more than above
// live workers keeps about keepers of them pulling while idle, a parked
// worker's requests wait at most parked, and each executor started from
// here on (NewExecutor) takes its place in the pool from draw.
func SetParking(t testing.TB, keepers, above int, parked time.Duration, draw func() float64) {
	k, a, p, d := keepersPerPool, parkAbove, parkedExpires, parkDraw
	keepersPerPool, parkAbove, parkedExpires, parkDraw = keepers, above, parked, draw
	t.Cleanup(func() { keepersPerPool, parkAbove, parkedExpires, parkDraw = k, a, p, d })
}

// SetHoldLimit sets how long a prefetched task may wait for a slot before
// it is handed back (a second by default).
func SetHoldLimit(o *ExecutorOptions, d time.Duration) { o.holdLimit = d }

// SetPrefetchWindow sets how long prefetched tasks may be expected to wait
// for a slot at the recent pace (5 ms by default), which bounds how many
// are prefetched.
func SetPrefetchWindow(o *ExecutorOptions, d time.Duration) { o.prefetchWindow = d }
