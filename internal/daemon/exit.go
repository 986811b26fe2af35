package daemon

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

// UsageError is a mistake in the command line: Exit prints it and exits 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// StartError is a configuration the daemon cannot start with, found after
// the command line was parsed (a Python module that fails to import, say):
// Exit prints it and exits 2, without pointing at -h.
type StartError struct{ Err error }

func (e StartError) Error() string { return e.Err.Error() }
func (e StartError) Unwrap() error { return e.Err }

// Usagef returns a UsageError.
func Usagef(format string, args ...any) error {
	return UsageError{fmt.Errorf(format, args...)}
}

// ErrFlags is a flag the flag package could not parse (and has reported,
// with the usage).
var ErrFlags = errors.New("bad flags")

// Exit ends daemon name after its run returned err: 0 for none (or -h),
// 2 for a usage mistake, 1 for anything else.
func Exit(name string, err error) {
	var ue UsageError
	var se StartError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, ErrFlags):
		os.Exit(2) // the flag package printed the error and the usage
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "%s: %v (see %s -h)\n", name, err, name)
		os.Exit(2)
	case errors.As(err, &se):
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}
