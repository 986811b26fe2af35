package langrt_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind: a
// closed runtime must have ended everything it started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
