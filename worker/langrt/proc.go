package langrt

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/frayhq/fray/internal/lines"
	"github.com/frayhq/fray/internal/reaper"
)

// ErrCrashed means a runtime process died (was killed, exited) while it
// had a request in hand.
var ErrCrashed = errors.New("langrt: runtime process died")

// StartError is a runtime that could not start: the command failed, the
// process exited before its hello, or its hello reported an error (an
// import error, with the language's traceback).
type StartError struct {
	Command string
	Err     *LangError // the runtime's report, when it sent one
	Cause   error      // else why it did not answer
	Stderr  string     // the tail of what the process wrote on stderr
}

func (e *StartError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "runtime %q did not start: ", e.Command)
	switch {
	case e.Err != nil:
		b.WriteString(e.Err.Error())
		if e.Err.Traceback != "" {
			b.WriteString("\n" + strings.TrimRight(e.Err.Traceback, "\n"))
		}
	case e.Cause != nil:
		b.WriteString(e.Cause.Error())
	}
	if e.Stderr != "" {
		b.WriteString("\nits stderr:\n" + strings.TrimRight(e.Stderr, "\n"))
	}
	return b.String()
}

// procConfig is what starting one runtime process needs.
type procConfig struct {
	command      []string
	env          []string
	imports      []string
	paths        []string
	startTimeout time.Duration
	log          *slog.Logger
	// onLog receives the code's printed lines (log frames) with the
	// request they belong to (0: none).
	onLog func(p *proc, id uint64, stream, line string)
	// onFetch serves a fetch frame; it runs on its own goroutine.
	onFetch func(p *proc, f *Frame)
}

// proc is one runtime process and its pipes.
type proc struct {
	cfg   *procConfig
	cmd   *exec.Cmd
	pid   int
	hello *Frame
	out   frameWriter
	in    *frameReader
	inF   *os.File // the read end of the runtime's frame pipe

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan *Frame // answers, or tokenFrame (reader.go)
	labels  map[uint64]string      // request id -> what it serves, for log lines
	writing map[uint64]struct{}    // pending requests still writing their frame: not handed the token
	tok     int                    // who reads the frame pipe (reader.go)
	freeAt  time.Time              // when the token was last freed
	idle    *time.Timer            // hands a free token to the background reader
	// idleArmed: idle runs (guarded by mu).
	idleArmed bool
	kick      chan struct{} // wakes the background reader

	stopReaper func()
	stderr     *tailWriter
	dead       chan struct{} // closed once the process exited and was reaped
	exitErr    error         // set before dead closes
	killed     bool          // guarded by mu: we killed it (timeout, drain, close)
}

// startProc starts a runtime process and waits for its hello.
func startProc(ctx context.Context, cfg *procConfig) (*proc, error) {
	name := strings.Join(cfg.command, " ")
	cmd := exec.Command(cfg.command[0], cfg.command[1:]...)
	cmd.Env = cfg.env
	// Its own process group: a terminal's Ctrl-C goes to the worker, which
	// drains and then stops its runtimes; and the reaper kills the group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	toRT, toRTw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	fromRTr, fromRT, err := os.Pipe()
	if err != nil {
		toRT.Close()
		toRTw.Close()
		return nil, err
	}
	cmd.ExtraFiles = []*os.File{toRT, fromRT} // fd 3: frames in, fd 4: frames out
	p := &proc{cfg: cfg, cmd: cmd, pending: map[uint64]chan *Frame{}, labels: map[uint64]string{}, writing: map[uint64]struct{}{},
		stderr: &tailWriter{max: 8192}, dead: make(chan struct{})}
	p.out.w, p.out.file = toRTw, toRTw
	p.in, p.inF = newFrameReader(fromRTr), fromRTr
	// The code's output outside its print calls (native extensions,
	// subprocesses, a fatal crash) goes to the worker's log. Our own pipes,
	// so that Wait does not close them before the pumps read the tail.
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll(toRT, toRTw, fromRTr, fromRT)
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(toRT, toRTw, fromRTr, fromRT, outR, outW)
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	closeAll(toRT, fromRT, outW, errW)
	if err != nil {
		closeAll(toRTw, fromRTr, outR, errR)
		return nil, &StartError{Command: name, Cause: err}
	}
	p.pid = cmd.Process.Pid // before the pumps, which log it
	var pumps sync.WaitGroup
	pumps.Add(2)
	go p.pump(outR, "stdout", &pumps)
	go p.pump(errR, "stderr", &pumps)
	// A worker that dies (SIGKILL, OOM) takes its runtimes with it.
	if p.stopReaper, err = reaper.Start(p.pid); err != nil {
		syscall.Kill(-p.pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return nil, &StartError{Command: name, Cause: fmt.Errorf("start its reaper: %w", err)}
	}
	go func() {
		p.exitErr = cmd.Wait()
		syscall.Kill(-p.pid, syscall.SIGKILL) // whatever it left behind in its group
		p.stopReaper()
		toRTw.Close()
		// Let the pumps read the last lines (a crash's message) first.
		pumped := make(chan struct{})
		go func() { pumps.Wait(); close(pumped) }()
		select {
		case <-pumped:
		case <-time.After(time.Second):
		}
		close(p.dead)
	}()

	fail := func(cause error, fe *LangError) (*proc, error) {
		p.kill()
		<-p.dead
		p.inF.Close()
		return nil, &StartError{Command: name, Err: fe, Cause: cause, Stderr: p.stderr.String()}
	}
	if err := p.out.write(&Frame{T: FrameStart, V: ProtocolVersion, Imports: cfg.imports, Paths: cfg.paths}); err != nil {
		return fail(fmt.Errorf("send start frame: %w", err), nil)
	}
	type helloOrErr struct {
		f   *Frame
		err error
	}
	hc := make(chan helloOrErr, 1)
	go func() {
		f, err := p.in.read()
		hc <- helloOrErr{f, err}
	}()
	timer := time.NewTimer(cfg.startTimeout)
	defer timer.Stop()
	var h helloOrErr
	select {
	case h = <-hc:
	case <-timer.C:
		return fail(fmt.Errorf("no hello within %s", cfg.startTimeout), nil)
	case <-ctx.Done():
		return fail(context.Cause(ctx), nil)
	}
	switch {
	case h.err != nil:
		<-p.dead // it exited (or closed its pipe): say how
		return fail(fmt.Errorf("it %s before saying hello (%v)", exitText(p.exitErr), h.err), nil)
	case h.f.T != FrameHello:
		return fail(fmt.Errorf("first frame is %q, want hello", h.f.T), nil)
	case h.f.Err != nil:
		return fail(nil, h.f.Err)
	case h.f.V != ProtocolVersion:
		return fail(fmt.Errorf("it speaks frame protocol version %d, this worker %d", h.f.V, ProtocolVersion), nil)
	}
	p.hello = h.f
	p.startReading()
	return p, nil
}

// exitText says how a process ended.
func exitText(err error) string {
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		if ws, ok := xe.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("was killed by signal %d (%s)", ws.Signal(), ws.Signal())
		}
		return fmt.Sprintf("exited with status %d", xe.ExitCode())
	}
	if err == nil {
		return "exited with status 0"
	}
	return "ended: " + err.Error()
}

// maxOutputLine is the longest line of a process's own output logged
// whole; a longer one is cut (lines.Cut).
const maxOutputLine = 1 << 20

// pump logs what the process writes on its stdout or stderr outside of the
// code's print calls (native extensions, subprocesses, a fatal crash),
// line by line, until the process closes it: a line over maxOutputLine is
// cut, never the pump stopped (the process's next write would fail).
func (p *proc) pump(r *os.File, stream string, wg *sync.WaitGroup) {
	defer wg.Done()
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, ok, err := lines.Next(br, maxOutputLine)
		if !ok {
			return
		}
		p.logOutput(lines.Cut(line, maxOutputLine), stream)
		if err != nil {
			return
		}
	}
}

// logOutput logs line, which the process wrote on stream.
func (p *proc) logOutput(line, stream string) {
	if stream == "stderr" {
		p.stderr.Write([]byte(line + "\n"))
	}
	if l := p.soleLabel(); l != "" {
		p.cfg.log.Info("runtime output", "for", l, "pid", p.pid, "stream", stream, "line", line)
	} else {
		p.cfg.log.Info("runtime output", "pid", p.pid, "stream", stream, "line", line)
	}
}

// soleLabel is what the process's one pending request serves, "" when it
// has none or several (then a line on its fd 1 or 2 cannot be attributed).
func (p *proc) soleLabel() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.labels) != 1 {
		return ""
	}
	for _, l := range p.labels {
		return l
	}
	return ""
}

// label is what request id serves ("" when unknown), for log lines.
func (p *proc) label(id uint64) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.labels[id]
}

// crashErr describes the process's death, once dead is closed.
func (p *proc) crashErr() error {
	how := exitText(p.exitErr)
	if tail := strings.TrimSpace(p.stderr.String()); tail != "" {
		how += "; its stderr ends:\n" + tail
	}
	return fmt.Errorf("%w: process %d %s", ErrCrashed, p.pid, how)
}

// alive reports whether the process still runs and was not killed.
func (p *proc) alive() bool {
	select {
	case <-p.dead:
		return false
	default:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.killed
}

// kill SIGKILLs the process group; dead closes once it is reaped.
func (p *proc) kill() {
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	syscall.Kill(-p.pid, syscall.SIGKILL)
}

// stop asks the process to exit, and kills it after grace.
func (p *proc) stop(grace time.Duration) {
	if p.out.write(&Frame{T: FrameStop}) == nil {
		select {
		case <-p.dead:
			return
		case <-time.After(grace):
		}
	}
	p.kill()
	<-p.dead
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// tailWriter keeps the last max bytes written.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailWriter) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(b), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) > t.max {
		return "..." + string(t.buf[len(t.buf)-t.max:])
	}
	return string(t.buf)
}
