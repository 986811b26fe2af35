package tasks_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind: every
// goroutine the producer and executor start must end with them. nats-server
// (stopped by each test's cleanup) is allowed a moment to wind down, which
// goleak's retries give it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
