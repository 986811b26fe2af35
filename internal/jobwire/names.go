package jobwire

import (
	"strconv"
	"strings"
	"time"
)

// RecordVersion is the current Record version.
const RecordVersion = 1

// RequestVersion is the current JobRequest record version.
const RequestVersion = 2

// MaxAttemptsKept bounds TaskState.Attempts so records stay small.
const MaxAttemptsKept = 8

// Token encodes a job id as one NATS subject token and KV key part: the
// leading '/' is dropped and '.' becomes '=' (which names never contain),
// e.g. "/ns/llama-3.1" → "ns/llama-3=1".
func Token(id string) string {
	return strings.ReplaceAll(strings.TrimPrefix(id, "/"), ".", "=")
}

// IDFromToken reverses Token.
func IDFromToken(tok string) string {
	return "/" + strings.ReplaceAll(tok, "=", ".")
}

// WorkerToken encodes a worker id as a KV key part and subject token: any
// character outside [-_/=a-zA-Z0-9] becomes '_'.
func WorkerToken(id string) string {
	b := []byte(id)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '/' || c == '='
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}

// NowMS is the current time in Unix milliseconds.
func NowMS() int64 { return time.Now().UnixMilli() }

// Ptr returns a pointer to v, for the optional fields of jobs.JobRequest.
func Ptr[T any](v T) *T { return &v }

// FormatBytes renders n in the largest binary unit that keeps it readable,
// e.g. "4g" or "1.5g".
func FormatBytes(n int64) string {
	units := []struct {
		s string
		v int64
	}{{"t", 1 << 40}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}}
	for _, u := range units {
		if n >= u.v {
			f := strconv.FormatFloat(float64(n)/float64(u.v), 'f', 2, 64)
			f = strings.TrimRight(strings.TrimRight(f, "0"), ".")
			return f + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}

// Log batching bounds.
const (
	// MaxLineBytes truncates longer lines (marked with " …[truncated]").
	MaxLineBytes = 16 << 10
	// MaxBatchLines and MaxBatchBytes bound one LogBatch.
	MaxBatchLines = 2000
	MaxBatchBytes = 256 << 10
	// LogFlushInterval is how long a line waits at most before it is sent.
	LogFlushInterval = 100 * time.Millisecond
)
