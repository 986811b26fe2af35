package iris

import (
	"os"
	"testing"

	"github.com/frayhq/fray/integration/backends"
)

// TestMain stops the Iris cluster the tests started (backends.Iris) after
// the last test, failing the run if a process of it survives.
func TestMain(m *testing.M) { os.Exit(backends.Main(m)) }
