package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/frayhq/fray/internal/reaper"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/tasks"
)

// ExecError is an exec handler's failure: its exit status (or the signal
// that killed it) and the tail of its stderr.
type ExecError struct {
	Command  string
	ExitCode int // -1 when a signal killed the command
	Signal   int // the signal that killed it (9 for SIGKILL); 0 when it exited
	Stderr   string
}

func (e *ExecError) Error() string {
	msg := fmt.Sprintf("command %q exited with status %d", e.Command, e.ExitCode)
	if sig := e.ExitCode - 128; e.Signal == 0 && sig > 0 && sig < 65 {
		// The shell lived on and reported its command's death this way.
		msg += fmt.Sprintf(" (128+%d: its process was killed by signal %d, %s)", sig, sig, syscall.Signal(sig))
	}
	if e.Signal != 0 {
		msg = fmt.Sprintf("command %q was killed by signal %d (%s)", e.Command, e.Signal, syscall.Signal(e.Signal))
	}
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// DefaultExecMaxOutput is how much stdout an exec handler's command may
// print before it is killed and the task fails with tasks.ErrTooLarge.
const DefaultExecMaxOutput = 64 << 20

// ExecOption configures ExecHandler.
type ExecOption func(*execOptions)

type execOptions struct{ maxOutput int64 }

// ExecMaxOutput sets how much stdout the command may print (n > 0).
func ExecMaxOutput(n int64) ExecOption {
	return func(o *execOptions) {
		if n > 0 {
			o.maxOutput = n
		}
	}
}

// capBuffer keeps up to max bytes; the first write past them calls over
// and fails (os/exec then stops copying the pipe).
type capBuffer struct {
	buf      bytes.Buffer
	max      int64
	over     func()
	exceeded bool // read after cmd.Wait, which waits for the copying
}

var errOutputLimit = errors.New("output limit reached")

func (b *capBuffer) Write(p []byte) (int, error) {
	if int64(b.buf.Len())+int64(len(p)) > b.max {
		if !b.exceeded {
			b.exceeded = true
			b.over()
		}
		return 0, errOutputLimit
	}
	return b.buf.Write(p)
}

func (b *capBuffer) Bytes() []byte { return b.buf.Bytes() }

// stderrTail bounds how much stderr an ExecError carries.
const stderrTail = 4096

// execOutputGrace is how long an exec handler waits for its output pipes
// to close after the command exits.
const execOutputGrace = time.Second

// ExecHandler serves a task by running command through /bin/sh: the
// task's argument goes to its stdin as JSON, and the JSON it prints on
// stdout is the result (empty output is a null result). A non-zero exit is
// an *ExecError carrying the tail of stderr. The command's process group
// is killed when it exits (background children it left behind), on
// cancellation or a timeout, and when this process dies.
func ExecHandler(command string, opts ...ExecOption) tasks.Handler {
	o := execOptions{maxOutput: DefaultExecMaxOutput}
	for _, opt := range opts {
		opt(&o)
	}
	return func(ctx context.Context, raw []byte) (any, error) {
		var arg any
		if len(raw) > 0 {
			if err := objects.Unmarshal(raw, &arg); err != nil {
				return nil, fmt.Errorf("exec %q: decode argument: %w", command, err)
			}
		}
		in, err := json.Marshal(arg)
		if err != nil {
			return nil, fmt.Errorf("exec %q: argument is not JSON-encodable: %w", command, err)
		}
		cmd := exec.Command("/bin/sh", "-c", command)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Stdin = bytes.NewReader(append(in, '\n'))
		// Output past the limit kills the command: the worker's memory is
		// not the place for it (cmd.Process is set before any write).
		stdout := &capBuffer{max: o.maxOutput, over: func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }}
		stderr := &tailBuffer{max: stderrTail}
		cmd.Stdout, cmd.Stderr = stdout, stderr
		// A background child that inherits stdout or stderr would keep Wait
		// waiting for the pipes long after the command exited; give it this
		// long, then close them.
		cmd.WaitDelay = execOutputGrace
		if ti, ok := tasks.CurrentTask(ctx); ok {
			cmd.Env = append(cmd.Environ(), "FRAY_TASK_ID="+ti.ID, "FRAY_TASK_FN="+ti.Fn, fmt.Sprintf("FRAY_TASK_ATTEMPT=%d", ti.Attempt))
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("exec %q: %w", command, err)
		}
		// A worker that dies (SIGKILL, OOM) takes its commands with it,
		// rather than leaving them to run beside the task's next attempt.
		stopReaper, err := reaper.Start(cmd.Process.Pid)
		if err != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			return nil, fmt.Errorf("exec %q: start its reaper: %w", command, err)
		}
		defer stopReaper() // after the group is killed below
		waitErr := make(chan error, 1)
		go func() { waitErr <- cmd.Wait() }()
		select {
		case err = <-waitErr:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // stragglers the shell left behind
			if errors.Is(err, exec.ErrWaitDelay) {
				err = nil // exited 0; only a straggler held the output open
			}
		case <-ctx.Done():
			killGroup(cmd.Process.Pid, waitErr)
			return nil, context.Cause(ctx)
		}
		if stdout.exceeded {
			return nil, fmt.Errorf("exec %q: %w: its stdout passed the %d-byte limit (fray-worker --exec-max-output), so it was killed; put a large result in the object store and print its ref",
				command, tasks.ErrTooLarge, o.maxOutput)
		}
		if err != nil {
			ee := &ExecError{Command: command, ExitCode: -1, Stderr: strings.TrimSpace(stderr.String())}
			if xe, ok := err.(*exec.ExitError); ok {
				ee.ExitCode = xe.ExitCode()
				if ws, ok := xe.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					ee.Signal = int(ws.Signal())
				}
			}
			return nil, ee
		}
		out := bytes.TrimSpace(stdout.Bytes())
		if len(out) == 0 {
			return nil, nil
		}
		res, err := DecodeJSON(out)
		if err != nil {
			return nil, fmt.Errorf("exec %q: stdout is not JSON (%v): %.200q", command, err, out)
		}
		return res, nil
	}
}

// killGroup sends SIGTERM to the process group, then SIGKILL after a
// grace period, and reaps the process.
func killGroup(pid int, waitErr <-chan error) {
	syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-waitErr:
	case <-time.After(5 * time.Second):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-waitErr
	}
	syscall.Kill(-pid, syscall.SIGKILL) // stragglers the shell left behind
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	if len(t.buf) > t.max {
		return "..." + string(t.buf[len(t.buf)-t.max:])
	}
	return string(t.buf)
}

// DecodeJSON decodes one JSON value, keeping integers integers (a JSON 42
// becomes int64 42, not float64), so it round-trips through CBOR into Go
// integer types.
func DecodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one JSON value")
	}
	return numbers(v), nil
}

func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = numbers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = numbers(x[k])
		}
	}
	return v
}
