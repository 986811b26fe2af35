package jobs

import (
	"errors"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// errOutputCut ends a replica's output that a process outside its group
// holds open after the replica ended.
var errOutputCut = errors.New("jobs: output pipe held open after the replica ended")

// replicaOutput is the read end of a replica's output pipe, as its log pump
// reads it. While the replica runs, a read waits as long as it must. Once
// the replica has exited and its process group was swept (end), what is
// left is what the pipe held then: the pump reads on to end of file however
// long publishing the lines takes, except that it stops once it has read
// more than the pipe's capacity in bytes (a pipe the replica left full
// holds exactly its capacity; only a process that left the group, by
// setsid, can write more) or once its reads have waited idle in all for
// data (such a process holds the pipe open: what the group left in it
// needs no wait, so even a process that writes a little now and then ends
// the wait within idle).
type replicaOutput struct {
	f    *os.File
	idle time.Duration
	// ended is closed by end, after left and wait are set; they are then
	// the pump's alone. wait is how much longer reads may wait for data.
	ended chan struct{}
	left  int
	wait  time.Duration
	cut   atomic.Bool
}

func newReplicaOutput(f *os.File, idle time.Duration) *replicaOutput {
	return &replicaOutput{f: f, idle: idle, ended: make(chan struct{})}
}

// end says the replica's process group is gone. A read waiting meanwhile
// waits idle at most.
func (o *replicaOutput) end() {
	// One byte over what the pipe can hold: a full pipe is read to its
	// end of file, the byte after it can only come from outside the group.
	o.left = pipeCapacity(o.f) + 1
	o.wait = o.idle
	close(o.ended)
	_ = o.f.SetReadDeadline(time.Now().Add(o.idle))
}

func (o *replicaOutput) Read(p []byte) (int, error) {
	select {
	case <-o.ended:
	default:
		n, err := o.f.Read(p) // a deadline only comes with end
		return n, o.explain(err)
	}
	if o.left <= 0 {
		o.cut.Store(true)
		return 0, errOutputCut
	}
	if len(p) > o.left {
		p = p[:o.left]
	}
	// Only time waiting for data counts, never the time the pump spent
	// publishing between reads.
	start := time.Now()
	_ = o.f.SetReadDeadline(start.Add(o.wait))
	n, err := o.f.Read(p)
	o.wait -= time.Since(start)
	o.left -= n
	return n, o.explain(err)
}

func (o *replicaOutput) explain(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		o.cut.Store(true)
		return errOutputCut
	}
	return err
}

// Cut reports whether the output was cut short (errOutputCut).
func (o *replicaOutput) Cut() bool { return o.cut.Load() }

// pipeCapacity is the capacity of pipe f in bytes (the most it can hold),
// 1 MiB (Linux's default ceiling) when unknown.
func pipeCapacity(f *os.File) int {
	n := 1 << 20
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { // f.Fd() would make f blocking: no deadlines
			if c, err := unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0); err == nil && c > 0 {
				n = c
			}
		})
	}
	return n
}
