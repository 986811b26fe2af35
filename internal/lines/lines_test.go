package lines_test

import (
	"bufio"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/frayhq/fray/internal/lines"
)

// all reads r to its end with a 16-byte buffer (every line of more than
// that crosses a buffer boundary), the unended last line marked "(unended)".
func all(t *testing.T, r io.Reader, max int) []string {
	t.Helper()
	br := bufio.NewReaderSize(r, 16)
	var out []string
	for {
		line, ok, err := lines.Next(br, max)
		switch {
		case err == nil:
			out = append(out, lines.Cut(line, max))
		case ok:
			out = append(out, lines.Cut(line, max)+"(unended)")
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			return out
		}
	}
}

func TestLinesEndAtLFOnlyWhateverTheReadsAndAnUnendedLastLineIsSaid(t *testing.T) {
	in := "one\ntwo\r\n\nthree \r four\n" + strings.Repeat("long", 10) + "\nlast"
	// One byte per read: every read boundary falls inside a line.
	got := all(t, iotest.OneByteReader(strings.NewReader(in)), 100)
	want := []string{"one", "two", "", "three \r four", strings.Repeat("long", 10), "last(unended)"}
	if !slices.Equal(got, want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
	if got := all(t, strings.NewReader("ended\n"), 100); !slices.Equal(got, []string{"ended"}) {
		t.Fatalf("lines %q: an ended last line is no unended one", got)
	}
}

func TestALineOverTheLimitIsCutAtACharacterBoundaryAndMarked(t *testing.T) {
	const max = 10
	in := strings.Repeat("a", max) + "\n" + // at the limit: whole
		strings.Repeat("b", 100) + "\n" + // over it, across many buffers
		strings.Repeat("c", max-1) + "é" + "c\n" + // é straddles the limit
		strings.Repeat("d", max) + "\r\n" + // the CR is no part of the line
		"e"
	got := all(t, strings.NewReader(in), max)
	want := []string{
		strings.Repeat("a", max),
		strings.Repeat("b", max) + lines.Mark,
		strings.Repeat("c", max-1) + lines.Mark,
		strings.Repeat("d", max),
		"e(unended)",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
}
