package langrt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/frayhq/fray/objects"
)

// FuzzFrameReader: a worker must survive any bytes on a runtime's pipe: a
// frame is read whole and well formed, or refused with ErrFrame (or the
// pipe's end), never a panic or an unbounded allocation.
func FuzzFrameReader(f *testing.F) {
	for _, fr := range []*Frame{
		{T: FrameHello, V: ProtocolVersion, Lang: "python", Functions: []string{"a"}, Classes: []ClassInfo{{Name: "C", Methods: []string{"m"}}}},
		{T: FrameResult, ID: 7, Value: []byte{0xf6}, Methods: []string{"m"}},
		{T: FrameError, ID: 8, Err: &LangError{Type: "builtins.ValueError", Message: "x", Traceback: "tb", Exc: []byte{1}}},
		{T: FrameLog, ID: 9, Stream: "stdout", Line: "hello"},
		{T: FrameFetch, ID: 1, Ref: &objects.Ref{V: 1, Bucket: "FRAY_OBJECTS", Digest: "sha256:00", Size: 3}},
	} {
		var buf bytes.Buffer
		if err := (&frameWriter{w: &buf}).write(fr); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})       // a length far over MaxFrame
	f.Add([]byte{0, 0, 0, 3, 0xa1, 0x61, 0x74}) // truncated map
	f.Add([]byte{0, 0, 0, 1, 0xf6})             // not a map
	f.Add([]byte{0, 0, 0, 2, 0xa0, 0xa0})       // a map without a type, then garbage
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newFrameReader(bytes.NewReader(data))
		for {
			fr, err := r.read()
			if err != nil {
				if !errors.Is(err, ErrFrame) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("error %v is neither ErrFrame nor the pipe's end", err)
				}
				return
			}
			if fr.T == "" {
				t.Fatal("a frame without a type was accepted")
			}
		}
	})
}

// A frame is one length-prefixed write, and reads back equal.
func TestFramesRoundTripThroughOneWriteEach(t *testing.T) {
	var w countingWriter
	fw := &frameWriter{w: &w}
	in := &Frame{T: FrameRun, ID: 3, Fn: "f", Arg: bytes.Repeat([]byte{0x41}, 100000), Task: &TaskInfo{ID: "t", Attempt: 2}}
	if err := fw.write(in); err != nil {
		t.Fatal(err)
	}
	if w.writes != 1 {
		t.Fatalf("%d writes for one frame", w.writes)
	}
	if n := binary.BigEndian.Uint32(w.buf.Bytes()); int(n) != w.buf.Len()-4 {
		t.Fatalf("length prefix %d, body %d bytes", n, w.buf.Len()-4)
	}
	out, err := newFrameReader(&w.buf).read()
	if err != nil {
		t.Fatal(err)
	}
	if out.T != in.T || out.ID != in.ID || out.Fn != in.Fn || !bytes.Equal(out.Arg, in.Arg) || *out.Task != *in.Task {
		t.Fatalf("read back %+v", out)
	}
}

type countingWriter struct {
	buf    bytes.Buffer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	return c.buf.Write(p)
}
