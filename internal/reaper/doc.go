// Package reaper kills a process group when this process dies.
//
// A worker that dies (SIGKILL, the OOM killer) must not leave the
// processes it started running beside their task's or job's next attempt.
// Pdeathsig reaches only a direct child; what that child started (the
// python under `sh -c`) lives on. A reaper is a /bin/sh,
// this process's own child in a group of its own, that waits for end of
// file on a pipe only this process writes to: the kernel closes the pipe
// when this process dies, however it dies, and the reaper then SIGKILLs
// the group. Being this process's child, it is reaped by it (no zombie
// under a PID-1 worker) and never seen by the command.
//
// It reaches the process group only: a process that leaves it for a
// session of its own (setsid; torchrun starts its ranks that way) escapes.
// Catching those needs a cgroup per attempt.
package reaper
