// Package reaper kills a process group when this process dies.
//
// A worker that dies (SIGKILL, the OOM killer) must not leave the
// processes it started running beside their task's or job's next attempt.
// Pdeathsig reaches only a direct child; what that child started (the
// python under `sh -c`, torchrun's ranks) lives on. A reaper is a /bin/sh,
// this process's own child in a group of its own, that waits for end of
// file on a pipe only this process writes to: the kernel closes the pipe
// when this process dies, however it dies, and the reaper then SIGKILLs
// the group. Being this process's child, it is reaped by it (no zombie
// under a PID-1 worker) and never seen by the command.
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
