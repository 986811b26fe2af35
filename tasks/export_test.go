package tasks

import "time"

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

// SetHoldLimit sets how long a prefetched task may wait for a slot before
// it is handed back (a second by default).
func SetHoldLimit(o *ExecutorOptions, d time.Duration) { o.holdLimit = d }
