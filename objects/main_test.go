package objects_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind: readers
// stop their pull subscriptions, puts wait for their acknowledgements.
// nats-server (stopped by each test's cleanup) is given goleak's retries to
// wind down.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
