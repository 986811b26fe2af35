// Command venvcmd makes sure a test virtualenv exists and prints its
// directory: `go run ./integration/backends/venvcmd venv-py`. make uses it
// so that the Makefile and the Go integration tests share one venv (same
// directory, same pins, same lock).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/frayhq/fray/integration/backends"
)

func main() {
	specs := map[string]backends.VenvSpec{backends.PyVenv.Name: backends.PyVenv}
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: venvcmd venv-py")
		os.Exit(2)
	}
	spec, ok := specs[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "venvcmd: unknown venv %q (known: %s)\n", os.Args[1], backends.PyVenv.Name)
		os.Exit(2)
	}
	v, err := backends.Ensure(context.Background(), spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, "venvcmd:", err)
		os.Exit(1)
	}
	fmt.Println(v.Dir)
}
