package jobs

import "time"

// CanTransition is canTransition, for the external tests.
var CanTransition = canTransition

// SetExitRepeat sets how long the runner waits for an exit report to be
// acted on before it sends it again (5 s by default).
func SetExitRepeat(o *RunnerOptions, d time.Duration) { o.exitRepeat = d }

// SetOutputIdle sets how long in all, once a replica has exited, the reads
// of its output pipe wait for data (5 s by default).
func SetOutputIdle(o *RunnerOptions, d time.Duration) { o.outputIdle = d }

// PumpLines is pumpLines, for the external tests.
var PumpLines = pumpLines
