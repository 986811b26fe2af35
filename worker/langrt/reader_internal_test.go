package langrt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/objects"
)

// printed collects a process's log frames.
type printed struct {
	mu    sync.Mutex
	lines []string // "<id> <stream> <line>"
	on    func(line string)
}

func (pr *printed) add(id uint64, stream, line string) {
	pr.mu.Lock()
	pr.lines = append(pr.lines, fmt.Sprintf("%d %s %s", id, stream, line))
	on := pr.on
	pr.mu.Unlock()
	if on != nil {
		on(line)
	}
}

func (pr *printed) has(want string) bool {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	for _, l := range pr.lines {
		if l == want {
			return true
		}
	}
	return false
}

func (pr *printed) count(prefix string) int {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	n := 0
	for _, l := range pr.lines {
		if strings.Contains(l, prefix) {
			n++
		}
	}
	return n
}

// streamsActor starts a Python runtime process hosting an rt.Streams
// actor that runs up to conc calls at a time; killed when the test ends.
func streamsActor(t *testing.T, conc int) (*proc, *printed) {
	t.Helper()
	py, paths := frayt.Python(t)
	pr := &printed{}
	cfg := &procConfig{command: []string{py, "-m", PythonModule}, env: frayt.PythonEnv(paths[:1]),
		imports: []string{"rtfixtures"}, paths: paths[1:], startTimeout: time.Minute,
		log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		onLog:   func(_ *proc, id uint64, stream, line string) { pr.add(id, stream, line) },
		onFetch: func(*proc, *Frame) {}}
	ctx := frayt.Context(t, time.Minute)
	p, err := startProc(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.kill()
		<-p.dead
	})
	r, err := p.request(ctx, &Frame{T: FrameNew, Fn: "rt.Streams", Actor: &ActorInfo{Class: "rt.Streams", Index: -1, MaxConcurrency: conc}}, "streams")
	if err != nil || r.T != FrameResult {
		t.Fatalf("construct: %v %+v", err, r)
	}
	return p, pr
}

// call calls method with arg and decodes the answer into out.
func call(ctx context.Context, p *proc, method string, arg, out any) error {
	raw, err := objects.Marshal(arg)
	if err != nil {
		return err
	}
	r, err := p.request(ctx, &Frame{T: FrameCall, Fn: method, Arg: raw}, "streams."+method)
	if err != nil {
		return err
	}
	if r.T == FrameError {
		return r.Err
	}
	return objects.Unmarshal(r.Value, out)
}

func lastID(p *proc) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next
}

func TestConcurrentRequestsOnOneProcessGetTheirOwnAnswers(t *testing.T) {
	const n = 6
	p, pr := streamsActor(t, n)
	ctx := frayt.Context(t, time.Minute)
	for round := range 3 {
		got := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// The first call sleeps longest: it reads the pipe, and
				// hands the others their answers and lines.
				v := fmt.Sprintf("r%d-%d", round, i)
				errs[i] = call(ctx, p, "hold", map[string]any{"v": v, "secs": 0.05 * float64(n-i)}, &got[i])
			}()
			id := uint64(1 + round*n + i + 1) // the constructor's request was 1
			frayt.Eventually(t, 10*time.Second, "the call is sent", func() bool { return lastID(p) == id })
		}
		wg.Wait()
		for i := range n {
			want := fmt.Sprintf("r%d-%d", round, i)
			if errs[i] != nil || got[i] != want {
				t.Fatalf("call %d: %q, %v; want %q", i, got[i], errs[i], want)
			}
			if !pr.has(fmt.Sprintf("%d stdout done %s", 1+round*n+i+1, want)) {
				t.Errorf("the line of call %d is missing or lost its request id; have %q", i, pr.lines)
			}
		}
	}
}

func TestAKilledProcessFailsEveryWaitingRequestWithTheCrash(t *testing.T) {
	const n = 4
	p, pr := streamsActor(t, n)
	ctx := frayt.Context(t, time.Minute)
	errc := make(chan error, n)
	for i := range n {
		go func() {
			var s string
			errc <- call(ctx, p, "hold", map[string]any{"v": fmt.Sprint(i), "secs": 60}, &s)
		}()
	}
	frayt.Eventually(t, 20*time.Second, "every call running", func() bool { return pr.count("holding") == n })
	if err := syscall.Kill(p.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for range n {
		select {
		case err := <-errc:
			if !errors.Is(err, ErrCrashed) || !strings.Contains(err.Error(), "signal 9") {
				t.Fatalf("err %v: want ErrCrashed naming signal 9", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a waiting request did not return after its process was killed")
		}
	}
}

func TestACancelledRequestLeavesTheStreamWhole(t *testing.T) {
	p, pr := streamsActor(t, 2)
	ctx := frayt.Context(t, time.Minute)
	for i := range 3 {
		// The cancelled call reads the pipe (nobody else waits) when its
		// ctx ends; its answer comes later, to nobody.
		cctx, cancel := context.WithCancelCause(ctx)
		pr.mu.Lock()
		pr.on = func(line string) {
			if line == fmt.Sprintf("holding a%d", i) {
				cancel(errors.New("caller gave up"))
			}
		}
		pr.mu.Unlock()
		var s string
		err := call(cctx, p, "hold", map[string]any{"v": fmt.Sprintf("a%d", i), "secs": 0.2}, &s)
		if err == nil || err.Error() != "caller gave up" {
			t.Fatalf("cancelled call: %q, %v; want the ctx's cause", s, err)
		}
		// The next call is answered with its own value, and so is one
		// made after the cancelled call's answer came.
		if err := call(ctx, p, "hold", map[string]any{"v": fmt.Sprintf("b%d", i), "secs": 0}, &s); err != nil || s != fmt.Sprintf("b%d", i) {
			t.Fatalf("call after the cancelled one: %q, %v", s, err)
		}
		frayt.Eventually(t, 10*time.Second, "the cancelled call's answer is past", func() bool { return pr.count(fmt.Sprintf("done a%d", i)) == 1 })
		if err := call(ctx, p, "hold", map[string]any{"v": fmt.Sprintf("c%d", i), "secs": 0}, &s); err != nil || s != fmt.Sprintf("c%d", i) {
			t.Fatalf("call after the cancelled one's answer: %q, %v", s, err)
		}
	}
	if !p.alive() {
		t.Fatal("the process was killed")
	}
}

func TestInterruptsWhileAFrameIsReadDoNotSplitIt(t *testing.T) {
	p, _ := streamsActor(t, 1)
	ctx := frayt.Context(t, time.Minute)
	const n = 16 << 20 // the pipe holds 64 KiB: the answer arrives in many reads
	for range 3 {
		done := make(chan struct{})
		go func() {
			for {
				select {
				case <-done:
					return
				default:
					p.interrupt()
					time.Sleep(20 * time.Microsecond)
				}
			}
		}()
		var s string
		err := call(ctx, p, "big", n, &s)
		close(done)
		if err != nil || len(s) != n || strings.Trim(s, "x") != "" {
			t.Fatalf("big answer: %d bytes, %v", len(s), err)
		}
		if err := call(ctx, p, "hold", map[string]any{"v": "after", "secs": 0}, &s); err != nil || s != "after" {
			t.Fatalf("call after the big answer: %q, %v", s, err)
		}
	}
}

func TestLinesPrintedWhileNoRequestWaitsReachTheLog(t *testing.T) {
	p, pr := streamsActor(t, 1)
	ctx := frayt.Context(t, time.Minute)
	for i := range 3 {
		line := fmt.Sprintf("printed later %d", i)
		var none any
		if err := call(ctx, p, "print_later", map[string]any{"line": line, "secs": 0.1}, &none); err != nil {
			t.Fatal(err)
		}
		frayt.Eventually(t, 10*time.Second, "the line printed after the call", func() bool { return pr.has("0 stdout " + line) })
		// The background reader has the pipe now; a call takes it back.
		var s string
		if err := call(ctx, p, "hold", map[string]any{"v": "next", "secs": 0}, &s); err != nil || s != "next" {
			t.Fatalf("call after the line: %q, %v", s, err)
		}
	}
}

// interrupting returns a reader that fails with a read deadline every few
// reads, as an interrupted pipe read does.
type interrupting struct {
	r io.Reader
	n int
}

func (ir *interrupting) Read(b []byte) (int, error) {
	ir.n++
	if ir.n%3 == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	return ir.r.Read(b[:min(len(b), 7)])
}

// An interrupt returns from the read, before a frame or inside one; the
// next read goes on where it stopped, so every frame arrives whole. Any
// other error inside a frame is a truncated frame.
func TestAFrameReaderResumesInterruptedFrames(t *testing.T) {
	var buf bytes.Buffer
	frames := []*Frame{{T: FrameLog, ID: 1, Line: strings.Repeat("l", 50)}, {T: FrameResult, ID: 2, Value: bytes.Repeat([]byte{0x41}, 3<<20)}, {T: FrameError, ID: 3, Err: &LangError{Message: "m"}}}
	for _, f := range frames {
		if err := (&frameWriter{w: &buf}).write(f); err != nil {
			t.Fatal(err)
		}
	}
	raw := buf.Bytes()
	fr := newFrameReader(&interrupting{r: bytes.NewReader(raw)})
	var got []*Frame
	inside, between := 0, 0
	for {
		f, err := fr.read()
		if interrupted(err) {
			if fr.nhdr > 0 {
				inside++
			} else {
				between++
			}
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, f)
	}
	if len(got) != 3 || got[0].Line != frames[0].Line || !bytes.Equal(got[1].Value, frames[1].Value) || got[2].Err.Message != "m" {
		t.Fatalf("read back %d frames", len(got))
	}
	if inside == 0 || between == 0 {
		t.Fatalf("%d interrupts inside frames, %d between: the reader was not interrupted both ways", inside, between)
	}
	// A pipe that breaks inside a frame truncates it.
	fr = newFrameReader(io.MultiReader(bytes.NewReader(raw[:30]), iotest.ErrReader(io.ErrClosedPipe)))
	if _, err := fr.read(); !errors.Is(err, ErrFrame) {
		t.Fatalf("a frame cut by a broken pipe read as %v, want ErrFrame", err)
	}
}

// A process killed in the middle of writing a frame, whose frame pipe a
// process it left behind (in a session of its own, so not killed with its
// group) keeps open, still fails the request reading that frame with the
// crash: the pipe never ends, so only the process's death can end the wait.
func TestAProcessKilledMidFrameFailsTheRequestReadingIt(t *testing.T) {
	p, pr := streamsActor(t, 1)
	ctx := frayt.Context(t, time.Minute)
	errc := make(chan error, 1)
	go func() {
		var s string
		errc <- call(ctx, p, "die_mid_frame", nil, &s)
	}()
	frayt.Eventually(t, 20*time.Second, "the leaker's pid printed", func() bool { return pr.count(" stdout leaker ") == 1 })
	pr.mu.Lock()
	var pid int
	for _, l := range pr.lines {
		if _, err := fmt.Sscanf(l[strings.Index(l, "leaker "):], "leaker %d", &pid); err == nil {
			break
		}
	}
	pr.mu.Unlock()
	if pid <= 0 {
		t.Fatalf("no leaker pid in %q", pr.lines)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) }) // the pipe ends: the request returns
	select {
	case <-p.dead:
	case <-time.After(20 * time.Second):
		t.Fatal("the process did not die")
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrCrashed) {
			t.Fatalf("err %v: want ErrCrashed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request reading the unfinished frame did not return after its process died")
	}
}

// A request whose ctx ends returns then, even while its process is stuck
// in the middle of writing a frame (stopped, or blocked between the
// writes of a large frame): the caller (a task's timeout) then kills the
// process.
func TestARequestWhoseCtxEndsReturnsWhileItsProcessStallsMidFrame(t *testing.T) {
	p, _ := streamsActor(t, 1)
	endsWithItsCtx(t, p, 2*time.Second, "stall_mid_frame", 300, "its process stalled mid-frame")
}

// endsWithItsCtx calls method with a ctx of d and fails the test unless the
// call returns the ctx's deadline within 15 s; past that it kills p, so
// that the call returns and the test ends.
func endsWithItsCtx(t *testing.T, p *proc, d time.Duration, method string, arg any, while string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(frayt.Context(t, time.Minute), d)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		var s string
		errc <- call(ctx, p, method, arg, &s)
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v: want the ctx's deadline", err)
		}
	case <-time.After(15 * time.Second):
		p.kill() // the pipe ends: the request returns
		err := <-errc
		t.Fatalf("the request did not return when its ctx ended, %s (it returned %v once the process was killed)", while, err)
	}
}

// The token goes to the oldest request that has written its frame, never
// to one still writing (nobody would read meanwhile); with only writing
// requests left it goes to the background reader at once.
func TestTheTokenSkipsRequestsStillWritingTheirFrame(t *testing.T) {
	p := &proc{pending: map[uint64]chan *Frame{}, writing: map[uint64]struct{}{}, kick: make(chan struct{}, 1), dead: make(chan struct{})}
	p.idle = time.NewTimer(time.Hour)
	p.idle.Stop()
	for id := uint64(1); id <= 3; id++ {
		p.pending[id] = make(chan *Frame, 1)
	}
	p.writing[1] = struct{}{}
	p.writing[3] = struct{}{}
	p.mu.Lock()
	p.passTokenLocked()
	p.mu.Unlock()
	if p.tok != tokRequest || len(p.pending[2]) != 1 || len(p.pending[1]) != 0 {
		t.Fatalf("token %d, handed to 1: %d, to 2: %d; want request 2 (1 still writes)", p.tok, len(p.pending[1]), len(p.pending[2]))
	}
	delete(p.pending, 2)
	p.mu.Lock()
	p.passTokenLocked()
	p.mu.Unlock()
	if p.tok != tokFree || len(p.pending[1]) != 0 || len(p.pending[3]) != 0 || len(p.kick) != 1 {
		t.Fatalf("token %d, kick %d: want it free and the background reader woken", p.tok, len(p.kick))
	}
}

// heldWriter passes writes on; once armed, the next write returns only
// when hold closes, as if its goroutine were not scheduled again until
// then (its frame is in the pipe meanwhile).
type heldWriter struct {
	w     io.Writer
	armed atomic.Bool
	hold  chan struct{}
}

func (hw *heldWriter) Write(b []byte) (int, error) {
	n, err := hw.w.Write(b)
	if hw.armed.CompareAndSwap(true, false) {
		<-hw.hold
	}
	return n, err
}

// A request whose answer is read (by the token holder) before it is done
// writing still gets that answer when it then finds the token free: it
// must not take the token and read the pipe for an answer already handed
// to it.
func TestARequestAnsweredWhileItWritesGetsItsAnswer(t *testing.T) {
	p, pr := streamsActor(t, 2)
	ctx := frayt.Context(t, time.Minute)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // the background reader runs late, as on a busy machine
	hw := &heldWriter{hold: make(chan struct{})}
	if err := p.out.lock(ctx); err != nil {
		t.Fatal(err)
	}
	hw.w, p.out.w = p.out.w, hw
	p.out.unlock()
	for round := range 20 { // under -race the scheduler is shuffled: not every round meets the window
		hw.hold = make(chan struct{})
		bDone := make(chan error, 1)
		go func() {
			var s string
			bDone <- call(ctx, p, "hold", map[string]any{"v": fmt.Sprint("b", round), "secs": 0.3}, &s)
		}()
		frayt.Eventually(t, 10*time.Second, "b holds", func() bool { return pr.count(fmt.Sprint("holding b", round)) == 1 })
		hw.armed.Store(true)
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		wDone := make(chan error, 1)
		var got string
		go func() { wDone <- call(wctx, p, "hold", map[string]any{"v": fmt.Sprint("w", round), "secs": 0}, &got) }()
		// w's answer comes while it is still "writing": b, holding the
		// token, hands it to w's channel.
		frayt.Eventually(t, 10*time.Second, "w answered", func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			_, waiting := p.pending[p.next]
			return pr.count(fmt.Sprint("done w", round)) == 1 && p.next >= 2 && !waiting
		})
		if err := <-bDone; err != nil {
			t.Fatal(err)
		}
		close(hw.hold) // b freed the token; w goes on
		err := <-wDone
		cancel()
		if err != nil || got != fmt.Sprint("w", round) {
			t.Fatalf("round %d: the request answered while it wrote got %q, %v", round, got, err)
		}
	}
}

// A request whose ctx ends while its frame cannot be written (the process
// is stopped and the pipe is full) returns then, as one stuck reading does.
func TestARequestWhoseCtxEndsReturnsWhileItsFrameCannotBeWritten(t *testing.T) {
	p, _ := streamsActor(t, 1)
	if err := syscall.Kill(p.pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(p.pid, syscall.SIGCONT) })
	endsWithItsCtx(t, p, time.Second, "hold", map[string]any{"v": strings.Repeat("x", 1<<20), "secs": 0}, "its frame not yet written")
}

// A request waiting to write behind another's blocked frame gives up when
// its ctx ends; it does not wait for the other write.
func TestARequestWaitingBehindABlockedWriteReturnsWhenItsCtxEnds(t *testing.T) {
	p, _ := streamsActor(t, 1)
	if err := syscall.Kill(p.pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(p.pid, syscall.SIGCONT) })
	long := frayt.Context(t, time.Minute)
	go func() {
		var s string
		_ = call(long, p, "hold", map[string]any{"v": strings.Repeat("x", 1<<20), "secs": 0}, &s)
	}()
	frayt.Eventually(t, 10*time.Second, "the long request holds the writer", func() bool { return len(p.out.turn) == 1 })
	endsWithItsCtx(t, p, 500*time.Millisecond, "hold", map[string]any{"v": "y", "secs": 0}, "waiting behind another's blocked write")
}
