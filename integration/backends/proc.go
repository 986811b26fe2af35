package backends

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// freePort asks the kernel for a free loopback TCP port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Processes lists the live processes whose command line or environment
// contains needle (a head's private temp dir: every process a head starts
// carries it), as "pid: cmdline".
func Processes(needle string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		env, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if len(cmd) == 0 { // kernel thread or zombie
			continue
		}
		if bytes.Contains(cmd, []byte(needle)) || bytes.Contains(env, []byte(needle)) {
			out = append(out, e.Name()+": "+strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " ")))
		}
	}
	return out
}

// ProcessesWithArg lists live processes having arg as one argv element.
func ProcessesWithArg(arg string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		for _, a := range strings.Split(string(cmd), "\x00") {
			if a == arg || strings.Contains(a, arg) {
				out = append(out, e.Name()+": "+strings.ReplaceAll(string(cmd), "\x00", " "))
				break
			}
		}
	}
	return out
}

// killTagged kills (SIGTERM, then SIGKILL after grace) every process tagged
// with needle, and reports what was still alive at the end.
func killTagged(needle string, grace time.Duration) []string {
	signal := func(sig syscall.Signal) {
		for _, p := range Processes(needle) {
			if pid, err := strconv.Atoi(p[:strings.IndexByte(p, ':')]); err == nil {
				_ = syscall.Kill(pid, sig)
			}
		}
	}
	if len(Processes(needle)) == 0 {
		return nil
	}
	signal(syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) && len(Processes(needle)) > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	signal(syscall.SIGKILL)
	deadline = time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && len(Processes(needle)) > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	return Processes(needle)
}
