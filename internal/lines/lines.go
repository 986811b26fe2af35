package lines

import (
	"bufio"
	"bytes"
	"errors"
	"unicode/utf8"
)

// Mark ends a line that was cut.
const Mark = " …[truncated]"

// Next reads the next line of br: its text without the newline and err
// nil; or, when the input ends (EOF or another read error) before a
// newline, the text read since the last one (ok false when there was none)
// and that error. Of a line over max bytes only the first max+utf8.UTFMax
// bytes are kept, for Cut; the rest is read and dropped.
func Next(br *bufio.Reader, max int) (line string, ok bool, err error) {
	var buf []byte
	for {
		frag, err := br.ReadSlice('\n')
		ended := err == nil
		if ended {
			frag = frag[:len(frag)-1]
		}
		if room := max + utf8.UTFMax - len(buf); room > 0 {
			buf = append(buf, frag[:min(room, len(frag))]...)
		}
		switch {
		case ended:
			return string(bytes.TrimSuffix(buf, []byte{'\r'})), true, nil
		case errors.Is(err, bufio.ErrBufferFull):
		default:
			return string(buf), len(buf) > 0, err
		}
	}
}

// Cut returns s when it has at most max bytes, else its first max bytes at
// most, ending before a character that would straddle max, followed by
// Mark.
func Cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	n := max
	for k := max; k > max-utf8.UTFMax && k > 0; k-- {
		if utf8.RuneStart(s[k]) {
			n = k
			break
		}
	}
	return s[:n] + Mark
}
