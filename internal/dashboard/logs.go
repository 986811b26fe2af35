package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go/jetstream"
)

// logLine is one line as the page's script receives it.
type logLine struct {
	Task    int    `json:"task"`
	Attempt int    `json:"attempt"`
	N       int64  `json:"n"`
	Text    string `json:"text"`
}

// logStream sends job id's log as "lines" events (JSON arrays), from its
// last tailBatches batches (a "skipped" event says how many came before)
// and then as lines arrive, until the browser leaves. It reads
// FRAY_LOGS with an ordered consumer of its own; nothing else waits on it.
func (s *Server) logStream(w http.ResponseWriter, r *http.Request, id string) {
	if s.job(r.Context(), id) == nil {
		s.notFound(w, r, "There is no job "+id+".")
		return
	}
	ctx := r.Context()
	oc, err := s.js.OrderedConsumer(ctx, broker.StreamLogs, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{jobwire.LogFilter(id)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		s.errorPage(w, r, http.StatusBadGateway, "Cannot read the log", err.Error())
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := writeEvent(rc, w, "open", "{}"); err != nil {
		return
	}
	idle, skipped, sentAny := 0, 0, false
	for ctx.Err() == nil {
		batch, err := oc.Fetch(maxLogFetch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Debug("dashboard: fetch log", "job", id, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		var out []logLine
		for m := range batch.Messages() {
			// A long log is shown from its tail: the batches before the
			// last tailBatches are counted, not sent.
			if md, err := m.Metadata(); err == nil && md.NumPending >= tailBatches && !sentAny {
				skipped++
				continue
			}
			var b jobwire.LogBatch
			if objects.Unmarshal(m.Data(), &b) != nil {
				continue
			}
			for i, t := range b.Lines {
				out = append(out, logLine{Task: b.Task, Attempt: b.Attempt, N: b.First + int64(i), Text: t})
			}
		}
		if len(out) == 0 {
			if idle++; idle%15 == 0 { // a comment now and then keeps proxies from closing the stream
				rc.SetWriteDeadline(time.Now().Add(writeWait))
				if _, err := w.Write([]byte(": idle\n\n")); err != nil || rc.Flush() != nil {
					return
				}
			}
			continue
		}
		if skipped > 0 && !sentAny {
			if err := writeEvent(rc, w, "skipped", fmt.Sprintf(`{"batches":%d}`, skipped)); err != nil {
				return
			}
		}
		sentAny = true
		data, err := json.Marshal(out)
		if err != nil {
			return
		}
		if err := writeEvent(rc, w, "lines", string(data)); err != nil {
			return
		}
	}
}

const (
	// maxLogFetch is the most log batches read per fetch.
	maxLogFetch = 64
	// tailBatches is how many of a log's last batches a page starts with
	// (a batch holds up to jobwire.MaxBatchLines lines, usually far fewer).
	tailBatches = 200
)
