// Package lines splits process output into lines by the one rule fray's
// logs share (PROTOCOL.md, "LogBatch"): a line ends at LF, a CR before
// the LF is dropped, a flush or a read boundary never ends one, the text
// after the last newline is a line only once the output ends, and a line
// over a limit is cut at a character boundary and marked.
package lines
