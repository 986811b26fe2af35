package jobs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/internal/lines"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go/jetstream"
)

// LogLine is one line of a job's output.
type LogLine struct {
	Task    int    `json:"task"`
	Attempt int    `json:"attempt"`
	N       int64  `json:"n"` // line number within the task attempt, from 0
	Text    string `json:"text"`
}

// LogWriter batches the lines of one task attempt into jobwire.LogBatch records on
// FRAY_LOGS. It is not safe for concurrent use.
type LogWriter struct {
	js      jetstream.JetStream
	subject string
	batch   jobwire.LogBatch
	bytes   int
	msgID   string // when set, batches carry Nats-Msg-Id msgID:First (dedup)
	// unsent are batches whose publish failed, oldest first, to be sent
	// again as they are: the broker may have stored one, and the same id
	// with other lines would be dropped whole as its duplicate.
	unsent []sentBatch
}

// sentBatch is an encoded batch and the number of its first line.
type sentBatch struct {
	first int64
	data  []byte
}

// NewLogWriter makes a writer for task of job's attempt, for a writer that
// is no worker (the dispatcher's logs of external backends' jobs).
func NewLogWriter(js jetstream.JetStream, job string, task, attempt int) *LogWriter {
	return &LogWriter{js: js, subject: jobwire.LogSubject(job, task), batch: jobwire.LogBatch{V: jobwire.WireVersion, Job: job, Task: task, Attempt: attempt}}
}

// NewWorkerLogWriter makes worker's writer for task of job's attempt: its
// batches go on the worker's own log subjects.
func NewWorkerLogWriter(js jetstream.JetStream, job string, task, attempt int, worker string) *LogWriter {
	w := NewLogWriter(js, job, task, attempt)
	w.subject = jobwire.WorkerLogSubject(job, task, worker)
	return w
}

// Dedup makes every batch carry the message id prefix:<first line>, so a
// batch republished after a crash is stored once.
func (w *LogWriter) Dedup(prefix string) { w.msgID = prefix }

// Next is the line number the next line gets.
func (w *LogWriter) Next() int64 { return w.batch.First + int64(len(w.batch.Lines)) }

// SetNext sets the line number of the next line (for resuming).
func (w *LogWriter) SetNext(n int64) {
	w.batch.First = n
	w.batch.Lines = nil
	w.bytes = 0
	w.unsent = nil
}

// Line adds a line, sending the batch when it is full.
func (w *LogWriter) Line(ctx context.Context, s string) error {
	if !utf8.ValidString(s) {
		// CBOR text must be UTF-8; U+FFFD is longer than the byte it
		// replaces, so this comes before the cut.
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	s = lines.Cut(s, jobwire.MaxLineBytes)
	w.batch.Lines = append(w.batch.Lines, s)
	w.bytes += len(s) + 3
	if len(w.batch.Lines) >= jobwire.MaxBatchLines || w.bytes >= jobwire.MaxBatchBytes {
		return w.Flush(ctx)
	}
	return nil
}

// Pending reports whether lines wait to be sent.
func (w *LogWriter) Pending() bool { return len(w.batch.Lines) > 0 || len(w.unsent) > 0 }

// Flush sends the batches that failed before, then the buffered lines, if
// any. A batch that fails is kept as it is, to be sent again by the next
// Flush; the lines added meanwhile start a batch of their own.
func (w *LogWriter) Flush(ctx context.Context) error {
	for len(w.unsent) > 0 {
		if err := w.publish(ctx, w.unsent[0]); err != nil {
			// The buffered lines wait behind; as a batch of their own, so
			// that lines added meanwhile never make a batch over its
			// bounds.
			if merr := w.seal(); merr != nil {
				return merr
			}
			return err
		}
		w.unsent = w.unsent[1:]
	}
	if err := w.seal(); err != nil {
		return err
	}
	if len(w.unsent) == 0 {
		return nil
	}
	if err := w.publish(ctx, w.unsent[0]); err != nil {
		return err
	}
	w.unsent = w.unsent[:0]
	return nil
}

// seal encodes the buffered lines, if any, as the last unsent batch.
func (w *LogWriter) seal() error {
	if len(w.batch.Lines) == 0 {
		return nil
	}
	b, err := objects.Marshal(&w.batch)
	if err != nil {
		return err
	}
	w.unsent = append(w.unsent, sentBatch{first: w.batch.First, data: b})
	w.batch.First += int64(len(w.batch.Lines))
	w.batch.Lines = w.batch.Lines[:0]
	w.bytes = 0
	return nil
}

// publish sends one batch, retrying for a while when the broker is out of
// reach.
func (w *LogWriter) publish(ctx context.Context, sb sentBatch) error {
	var opts []jetstream.PublishOpt
	if w.msgID != "" {
		opts = append(opts, jetstream.WithMsgID(fmt.Sprintf("%s:%d", w.msgID, sb.first)))
	}
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for try := 0; ; try++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = w.js.Publish(pctx, w.subject, sb.data, opts...)
		cancel()
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		select { // broker restarting: retry with a short backoff
		case <-ctx.Done():
		case <-time.After(time.Duration(50*(try+1)) * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("jobs: publish logs of %s: %w", w.batch.Job, err)
	}
	return nil
}

// pumpLines reads r line by line into w until EOF, sending a batch when it
// is full or jobwire.LogFlushInterval after its first line, and flushes at the end.
// Lines are split by the rule of package lines: one is sent once its
// newline is read, however the writes and reads cut it, and the text after
// the last newline is sent as the last line at end of file.
// Publishing errors are returned after r is drained (so the process never
// blocks on a full pipe).
func pumpLines(ctx context.Context, r io.Reader, w *LogWriter) error {
	queue := make(chan string, 1024)
	go func() {
		defer close(queue)
		br := bufio.NewReaderSize(r, 64<<10)
		for {
			line, ok, err := lines.Next(br, jobwire.MaxLineBytes)
			// The unended text before errOutputCut is a line a process
			// outside the replica is still writing: not a last line.
			if ok && !errors.Is(err, errOutputCut) {
				queue <- line
			}
			if err != nil {
				return
			}
		}
	}()
	var firstErr error
	t := time.NewTimer(time.Hour)
	t.Stop()
	armed := false
	for {
		select {
		case s, ok := <-queue:
			if !ok {
				if err := w.Flush(context.WithoutCancel(ctx)); err != nil && firstErr == nil {
					firstErr = err
				}
				return firstErr
			}
			if err := w.Line(ctx, s); err != nil && firstErr == nil {
				firstErr = err
			}
			if w.Pending() && !armed {
				t.Reset(jobwire.LogFlushInterval)
				armed = true
			}
		case <-t.C:
			armed = false
			if err := w.Flush(ctx); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
}

// decodeBatch turns a log message into lines.
func decodeBatch(data []byte) ([]LogLine, error) {
	var b jobwire.LogBatch
	if err := objects.Unmarshal(data, &b); err != nil {
		return nil, err
	}
	out := make([]LogLine, len(b.Lines))
	for i, s := range b.Lines {
		out[i] = LogLine{Task: b.Task, Attempt: b.Attempt, N: b.First + int64(i), Text: s}
	}
	return out, nil
}

// TailLogs returns the last maxLines lines of job id's logs (all when
// maxLines <= 0), in order.
func TailLogs(ctx context.Context, js jetstream.JetStream, id string, maxLines int) ([]LogLine, error) {
	oc, err := js.OrderedConsumer(ctx, broker.StreamLogs, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{jobwire.LogFilter(id)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: logs of %s: %w", id, err)
	}
	info := oc.CachedInfo()
	if info == nil || info.NumPending == 0 {
		return nil, nil
	}
	it, err := oc.Messages()
	if err != nil {
		return nil, fmt.Errorf("jobs: logs of %s: %w", id, err)
	}
	defer it.Stop()
	var out []LogLine
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("jobs: logs of %s: %w", id, err)
		}
		lines, derr := decodeBatch(msg.Data())
		if derr == nil {
			out = append(out, lines...)
			if maxLines > 0 && len(out) > 2*maxLines+jobwire.MaxBatchLines {
				out = append(out[:0:0], out[len(out)-maxLines:]...)
			}
		}
		md, err := msg.Metadata()
		if err != nil || md.NumPending == 0 {
			break
		}
	}
	if maxLines > 0 && len(out) > maxLines {
		out = out[len(out)-maxLines:]
	}
	return out, nil
}

// lastLogSeq is the stream sequence of the job's newest log batch, 0 if none.
func lastLogSeq(ctx context.Context, js jetstream.JetStream, id string) (uint64, error) {
	s, err := js.Stream(ctx, broker.StreamLogs)
	if err != nil {
		return 0, err
	}
	m, err := s.GetLastMsgForSubject(ctx, jobwire.LogFilter(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}
