package ray

import (
	"os"
	"testing"

	"github.com/frayhq/fray/integration/backends"
)

// TestMain stops the Ray head the tests started (backends.Ray) after the
// last test, failing the run if a process of it survives.
func TestMain(m *testing.M) { os.Exit(backends.Main(m)) }
