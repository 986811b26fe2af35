package dispatcher_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

func errorsAs[T any](err error, target *T) bool { return errors.As(err, target) }

func readPids(path string) []int {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func anyAlive(pids []int) bool {
	for _, p := range pids {
		if syscall.Kill(p, 0) == nil {
			// A zombie still answers; check its state.
			b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
			if err == nil && !strings.Contains(string(b), ") Z ") {
				return true
			}
		}
	}
	return false
}
