package jobs

// CanTransition is canTransition, for the external tests.
var CanTransition = canTransition
