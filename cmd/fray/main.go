// Command fray is fray's command-line interface: run a local cluster, submit
// tasks and jobs, inspect workers, actors and jobs, and benchmark.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one `fray NAME` subcommand. Each lives in its own cmd_*.go
// file and adds itself to commands in an init function.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

// errUsage makes main print usage and exit 2.
var errUsage = errors.New("usage")

// exitError carries a specific exit code.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(runMain(ctx, os.Args[1:]))
}

func runMain(ctx context.Context, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "fray: unknown command %q\n\n", args[0])
		usage()
		return 2
	}
	err := c.run(ctx, args[1:])
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.As(err, &ee):
		return ee.code
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return 130 // Ctrl-C (or SIGTERM) ended a wait: no error to report
	default:
		fmt.Fprintf(os.Stderr, "fray %s: %v\n", c.name, err)
		return 1
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "fray: a distributed task queue and job system on NATS JetStream\n\nUsage: fray COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'fray COMMAND -h' for a command's flags.")
}

// newFlags makes a FlagSet whose usage names the command.
func newFlags(name, argsUsage string) *flag.FlagSet {
	return newFlagsFor(name, argsUsage, commands[name].summary)
}

// newFlagsFor makes the FlagSet of `fray NAME` (NAME may be "bench tasks",
// "jobs status") described by summary. Its Name, "fray NAME", prefixes
// the command's usage errors.
func newFlagsFor(name, argsUsage, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("fray "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: fray %s %s\n\n%s\n\nFlags:\n", name, argsUsage, strings.TrimSpace(summary))
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, mapping a flag error to errUsage (already printed).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

// parseArgs parses args with flags before, between or after the positional
// arguments (Go's flag package stops at the first non-flag, and would take
// every flag after it for a positional), and returns the positionals. "--"
// ends the flags.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if i := len(args) - len(rest) - 1; i >= 0 && args[i] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parsePositional is parseArgs that also checks the number of positionals:
// fewer than min prints "fray CMD: missing WHAT" and the usage, more than
// max (-1: no limit) names the first extra one. Both return errUsage (exit 2).
func parsePositional(fs *flag.FlagSet, args []string, min, max int, what string) ([]string, error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) < min {
		fmt.Fprintf(fs.Output(), "%s: missing %s\n\n", fs.Name(), what)
		fs.Usage()
		return nil, errUsage
	}
	if max >= 0 && len(pos) > max {
		return nil, usagef(fs, "unexpected argument %q; see '%s -h'", pos[max], fs.Name())
	}
	for _, p := range pos {
		if strings.TrimSpace(p) == "" {
			return nil, usagef(fs, "empty argument where a %s goes", what)
		}
	}
	return pos, nil
}

// usagef prints "fray CMD: <message>" for a mistake in the command line
// and returns errUsage (exit 2).
func usagef(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	return errUsage
}
