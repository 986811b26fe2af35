package frayt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// chromiumNames are the executables tried, in order.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Chromium returns the path of a headless-capable Chromium, installing
// Debian's chromium package with apt-get when none is on PATH
// ($FRAY_CHROMIUM overrides). Concurrent test packages serialise the
// install on a lock file. The error says what to do when it cannot.
func Chromium(ctx context.Context) (string, error) {
	if p := os.Getenv("FRAY_CHROMIUM"); p != "" {
		return p, nil
	}
	if p := findChromium(); p != "" {
		return p, nil
	}
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "fray-chromium-install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if p := findChromium(); p != "" {
		return p, nil // another package installed it meanwhile
	}
	apt, err := exec.LookPath("apt-get")
	if err != nil {
		return "", errors.New("no chromium on PATH and no apt-get to install it: install Chromium (Debian: apt-get install chromium) or set FRAY_CHROMIUM to its path")
	}
	install := func() error {
		cmd := exec.CommandContext(ctx, apt, "install", "-y", "--no-install-recommends", "chromium")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("apt-get install chromium: %w\n%s", err, tailOf(out.String(), 3000))
		}
		return nil
	}
	if err := install(); err != nil {
		// The package lists may be missing or stale: update them once.
		if uerr := exec.CommandContext(ctx, apt, "update").Run(); uerr != nil {
			return "", fmt.Errorf("%w (apt-get update failed too: %v); install Chromium or set FRAY_CHROMIUM", err, uerr)
		}
		if err := install(); err != nil {
			return "", fmt.Errorf("%w; install Chromium or set FRAY_CHROMIUM", err)
		}
	}
	if p := findChromium(); p != "" {
		return p, nil
	}
	return "", errors.New("apt-get installed chromium but no chromium executable is on PATH; set FRAY_CHROMIUM")
}

func findChromium() string {
	for _, n := range chromiumNames {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

func tailOf(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
