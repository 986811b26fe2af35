// Command headcmd starts a Ray head or an Iris local cluster as the Go
// integration tests do (backends.StartRay, backends.StartIris, in the
// shared virtualenvs), prints `address=URL` on stdout once it serves, and
// stops it, reaping every process it started, when its stdin closes or it
// gets SIGINT/SIGTERM. The Python suite uses it:
// `go run ./integration/backends/headcmd ray`.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/frayhq/fray/integration/backends"
)

func main() {
	if len(os.Args) != 2 || (os.Args[1] != "ray" && os.Args[1] != "iris") {
		fmt.Fprintln(os.Stderr, "usage: headcmd ray|iris\n\nStarts a Ray head or an Iris local cluster, prints address=URL once it serves,\nand stops it when stdin closes or on SIGINT/SIGTERM.")
		os.Exit(2)
	}
	os.Exit(run(os.Args[1]))
}

func run(kind string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	spec, start := backends.RayVenv, backends.StartRay
	if kind == "iris" {
		spec, start = backends.IrisVenv, backends.StartIris
	}
	fmt.Fprintf(os.Stderr, "headcmd: preparing %s (virtualenv %s)\n", kind, spec.Name)
	v, err := backends.Ensure(ctx, spec)
	if err != nil {
		cancel()
		fmt.Fprintln(os.Stderr, "headcmd:", err)
		return 1
	}
	h, err := start(ctx, v)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "headcmd:", err)
		return 1
	}
	fmt.Printf("address=%s\n", h.Address)

	// Until stdin closes (the parent is gone or done) or a signal comes.
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-done:
	case <-sig:
	}
	if err := h.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "headcmd:", err)
		return 1
	}
	return 0
}
