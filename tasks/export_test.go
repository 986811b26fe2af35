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
