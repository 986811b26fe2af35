package reaper

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// Start guards process group pgid. Call stop once the group has been
// killed and its leader reaped: it kills the reaper first (so the reaper
// never signals a group id handed out again), then closes the pipe.
func Start(pgid int) (stop func(), err error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("/bin/sh", "-c", "read _; kill -9 -"+strconv.Itoa(pgid))
	cmd.Stdin = pr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // outside the guarded group: its signals are not ours
	err = cmd.Start()
	pr.Close()
	if err != nil {
		pw.Close()
		return nil, err
	}
	return func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		pw.Close()
	}, nil
}
