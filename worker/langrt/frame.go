package langrt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/frayhq/fray/objects"
)

// ProtocolVersion is the version of the frame protocol this package speaks.
// The worker sends it in the start frame; a runtime answers with the
// version it speaks in hello, and the worker refuses any other.
const ProtocolVersion = 1

// MaxFrame bounds one frame's payload (the CBOR after the length prefix):
// a sanity bound on the length prefix, above any value a task should pass
// by value (larger ones belong in the object store, passed as refs).
const MaxFrame = 1 << 30

// Frame types. The worker sends start, run, new, call, object and stop; the
// runtime sends hello, result, error, log and fetch.
const (
	FrameStart  = "start"  // worker → runtime, first: protocol version, modules to import, paths
	FrameHello  = "hello"  // runtime → worker, answer to start: what it registered (or why it could not)
	FrameRun    = "run"    // worker → runtime: run task function fn with arg
	FrameNew    = "new"    // worker → runtime: construct actor class fn with arg; this process now hosts it
	FrameCall   = "call"   // worker → runtime: call method fn of the hosted actor with arg
	FrameResult = "result" // runtime → worker: request id succeeded with value
	FrameError  = "error"  // runtime → worker: request id failed with error
	FrameLog    = "log"    // runtime → worker: a line the code printed while serving request id
	FrameFetch  = "fetch"  // runtime → worker: read object ref from the object store (id is the runtime's)
	FrameObject = "object" // worker → runtime: answer to fetch id: value, or error
	FrameStop   = "stop"   // worker → runtime: exit now
)

// Frame is one message on the pipes. Which fields are set depends on T
// (see the constants and PROTOCOL.md); absent fields are omitted.
type Frame struct {
	T  string `cbor:"t"`
	ID uint64 `cbor:"id,omitempty"`
	V  int    `cbor:"v,omitempty"`
	// Fn is the function (run), class (new) or method (call).
	Fn string `cbor:"fn,omitempty"`
	// Arg is the CBOR encoding of the argument (run, new, call).
	Arg []byte `cbor:"arg,omitempty"`
	// Value is the CBOR encoding of a result (result, object).
	Value []byte     `cbor:"value,omitempty"`
	Err   *LangError `cbor:"error,omitempty"`
	// Task describes the task being run (run).
	Task *TaskInfo `cbor:"task,omitempty"`
	// Actor describes the actor being constructed (new).
	Actor *ActorInfo `cbor:"actor,omitempty"`
	// Ref is the object to fetch (fetch).
	Ref *objects.Ref `cbor:"ref,omitempty"`
	// Stream and Line carry printed output (log): "stdout" or "stderr".
	Stream string `cbor:"stream,omitempty"`
	Line   string `cbor:"line,omitempty"`
	// Start: modules to import and directories to put first on the
	// module search path.
	Imports []string `cbor:"imports,omitempty"`
	Paths   []string `cbor:"paths,omitempty"`
	// Hello: the runtime's language and its version, its process id, and
	// what the imported modules registered. Methods answers new.
	Lang        string      `cbor:"lang,omitempty"`
	LangVersion string      `cbor:"lang_version,omitempty"`
	PID         int         `cbor:"pid,omitempty"`
	Functions   []string    `cbor:"functions,omitempty"`
	Classes     []ClassInfo `cbor:"classes,omitempty"`
	Methods     []string    `cbor:"methods,omitempty"`
	// Stop, on a call's result, says the method asked its actor to stop
	// (Python's frayhq.StopActor): the caller gets Value, then the actor
	// ends cleanly, as a Go method returning actors.ErrStop does.
	Stop bool `cbor:"stop,omitempty"`
}

// LangError is a failure in the runtime's language.
type LangError struct {
	// Type is the error's type name in its language (for Python the
	// qualified name, e.g. "builtins.ValueError"): an opaque label.
	Type      string `cbor:"type"`
	Message   string `cbor:"message"`
	Traceback string `cbor:"traceback,omitempty"`
	// Exc is the language's own encoding of the error (Python: the pickled
	// exception), passed on to callers of the same language.
	Exc []byte `cbor:"exc,omitempty"`
}

func (e *LangError) Error() string {
	if e.Type == "" {
		return e.Message
	}
	return e.Type + ": " + e.Message
}

// TaskInfo describes the task a run frame is for.
type TaskInfo struct {
	ID      string `cbor:"id"`
	Attempt int    `cbor:"attempt,omitempty"`
}

// ActorInfo describes the actor a new frame constructs.
type ActorInfo struct {
	Namespace      string `cbor:"ns"`
	Name           string `cbor:"name"`
	Class          string `cbor:"class"`
	Group          string `cbor:"group,omitempty"`
	Index          int    `cbor:"index"`
	Epoch          uint64 `cbor:"epoch"`
	Host           string `cbor:"host"`
	MaxConcurrency int    `cbor:"max_conc"`
}

// ClassInfo is an actor class a runtime registered, with its methods.
type ClassInfo struct {
	Name    string   `cbor:"name"`
	Methods []string `cbor:"methods"`
}

// ErrFrame reports a malformed frame or a broken pipe.
var ErrFrame = errors.New("langrt: bad frame")

// frameWriter writes whole frames, one write per frame.
type frameWriter struct {
	// turn holds a token while a frame is written: a writer waiting its
	// turn behind a blocked write still gives up when its ctx ends.
	turn     chan struct{}
	turnOnce sync.Once
	w        io.Writer
	buf      []byte
	// file, when set, is w as a pipe that takes write deadlines: writeCtx
	// interrupts a write blocked on it once its ctx ends.
	file *os.File
}

// lock takes the writer's turn, or gives up once ctx ends.
func (fw *frameWriter) lock(ctx context.Context) error {
	fw.turnOnce.Do(func() { fw.turn = make(chan struct{}, 1) })
	select {
	case fw.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (fw *frameWriter) unlock() { <-fw.turn }

func (fw *frameWriter) write(f *Frame) error {
	_, err := fw.writeCtx(context.Background(), f)
	return err
}

// writeCtx writes f whole, or gives up once ctx ends (with its cause).
// broken reports that part of the frame went out before it gave up: the
// stream is then broken, and its process must go.
func (fw *frameWriter) writeCtx(ctx context.Context, f *Frame) (broken bool, err error) {
	body, err := objects.Marshal(f)
	if err != nil {
		return false, err
	}
	if len(body) > MaxFrame {
		return false, fmt.Errorf("%w: %s frame of %d bytes over the %d-byte limit", ErrFrame, f.T, len(body), MaxFrame)
	}
	if err := fw.lock(ctx); err != nil {
		return false, err
	}
	defer fw.unlock()
	if ctx.Err() != nil {
		return false, context.Cause(ctx)
	}
	fw.buf = binary.BigEndian.AppendUint32(fw.buf[:0], uint32(len(body)))
	fw.buf = append(fw.buf, body...)
	var n int
	if fw.file != nil && ctx.Done() != nil {
		// The deadline is set only if ctx ends during this write, and
		// cleared before the next: never one left for another write.
		tripped := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			fw.file.SetWriteDeadline(time.Unix(1, 0))
			close(tripped)
		})
		n, err = fw.w.Write(fw.buf)
		if !stop() { // it ran, or runs: wait for its deadline, then clear it
			<-tripped
			fw.file.SetWriteDeadline(time.Time{})
		}
	} else {
		n, err = fw.w.Write(fw.buf)
	}
	if cap(fw.buf) > 1<<20 {
		fw.buf = nil // do not keep a large value's buffer
	}
	if err != nil && interrupted(err) && ctx.Err() != nil {
		return n > 0, context.Cause(ctx)
	}
	return false, err
}

// frameReader reads frames from a buffered pipe. A read interrupted by a
// read deadline (os.ErrDeadlineExceeded) returns that error and keeps
// what it read of the frame in hand, so the next read, by whichever
// goroutine, goes on where it stopped: an interrupt never splits a frame.
// Any other error ends the stream.
type frameReader struct {
	r    *bufio.Reader
	hdr  [4]byte
	nhdr int           // header bytes read of the frame in hand
	body []byte        // its body, once its length is known (up to 1 MiB)
	nbod int           // body bytes read
	big  *bytes.Buffer // a longer body, grown as it arrives
	left int64         // big's bytes still to come
}

func newFrameReader(r io.Reader) *frameReader { return &frameReader{r: bufio.NewReaderSize(r, 64<<10)} }

// interrupted is true for the error of a read deadline.
func interrupted(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

func (fr *frameReader) read() (*Frame, error) {
	if fr.nhdr == 0 {
		if _, err := fr.r.Peek(1); err != nil {
			return nil, err // nothing of a frame read: an EOF here is a clean end
		}
	}
	if fr.nhdr < len(fr.hdr) {
		for fr.nhdr < len(fr.hdr) {
			n, err := fr.r.Read(fr.hdr[fr.nhdr:])
			fr.nhdr += n
			if err != nil && fr.nhdr < len(fr.hdr) {
				return nil, fr.midFrame(err)
			}
		}
		n := binary.BigEndian.Uint32(fr.hdr[:])
		if n > MaxFrame {
			return nil, fmt.Errorf("%w: length %d over the %d-byte limit", ErrFrame, n, MaxFrame)
		}
		if n <= 1<<20 {
			fr.body, fr.nbod = make([]byte, n), 0
		} else {
			// Grow with what arrives: a bad length costs no more memory
			// than the bytes actually sent.
			fr.big, fr.left = new(bytes.Buffer), int64(n)
		}
	}
	var body []byte
	if fr.big == nil {
		for fr.nbod < len(fr.body) {
			n, err := fr.r.Read(fr.body[fr.nbod:])
			fr.nbod += n
			if err != nil && fr.nbod < len(fr.body) {
				return nil, fr.midFrame(err)
			}
		}
		body = fr.body
	} else {
		for fr.left > 0 {
			m, err := io.CopyN(fr.big, fr.r, fr.left)
			fr.left -= m
			if err != nil && fr.left > 0 {
				return nil, fr.midFrame(err)
			}
		}
		body = fr.big.Bytes()
	}
	fr.nhdr, fr.body, fr.big = 0, nil, nil // the next read starts a new frame
	f := new(Frame)
	if err := objects.Unmarshal(body, f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFrame, err)
	}
	if f.T == "" {
		return nil, fmt.Errorf("%w: no frame type", ErrFrame)
	}
	return f, nil
}

// midFrame is the error of a read that stopped inside a frame: an
// interrupt as it is (the frame resumes on the next read), anything else
// a truncated frame.
func (fr *frameReader) midFrame(err error) error {
	if interrupted(err) {
		return err
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: truncated frame: %v", ErrFrame, err)
}
