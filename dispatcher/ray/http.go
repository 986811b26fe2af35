package ray

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/frayhq/fray/dispatcher"
)

// ErrNotFound is returned (wrapped) when Ray does not know a job.
var ErrNotFound = errors.New("ray: job not found")

// HTTPError is an answer from Ray other than 200. Message is Ray's own
// message (the last line of the traceback Ray sends for a rejected request).
type HTTPError struct {
	Method, Path string
	Status       int
	Message      string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("ray: %s %s: %d %s: %s", e.Method, e.Path, e.Status, http.StatusText(e.Status), e.Message)
}

// Is makes a 404 match ErrNotFound and dispatcher.ErrJobNotFound.
func (e *HTTPError) Is(target error) bool {
	return (target == ErrNotFound || target == dispatcher.ErrJobNotFound) && e.Status == http.StatusNotFound
}

// retryable reports whether an answer with this status may succeed later.
func retryable(status int) bool {
	return status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout
}

// do sends one request, retrying connection errors and 5xx with backoff, and
// decodes a 200 JSON answer into out (when out is not nil).
func (b *Backend) do(ctx context.Context, method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("ray: encode %s %s: %w", method, path, err)
		}
	}
	var last error
	for attempt := 1; ; attempt++ {
		status, data, err := b.once(ctx, method, path, payload)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return fmt.Errorf("ray: %s %s: %w", method, path, ctx.Err())
			}
			last = fmt.Errorf("ray: %s %s%s: %w", method, b.base, path, err)
		case status == http.StatusOK:
			if out == nil {
				return nil
			}
			if err := json.Unmarshal(data, out); err != nil {
				return fmt.Errorf("ray: %s %s: decode answer: %w (body %q)", method, path, err, clip(string(data), 200))
			}
			return nil
		case retryable(status) && wrappedStatus(data) == 0:
			last = &HTTPError{Method: method, Path: path, Status: status, Message: rayMessage(data)}
		case retryable(status):
			// The head relayed a job agent's 4xx as a 500: report the 4xx.
			return &HTTPError{Method: method, Path: path, Status: wrappedStatus(data), Message: rayMessage(data)}
		default:
			return &HTTPError{Method: method, Path: path, Status: status, Message: rayMessage(data)}
		}
		if attempt >= b.retry.Attempts {
			return fmt.Errorf("%w (gave up after %d attempts)", last, attempt)
		}
		t := time.NewTimer(b.retry.Wait(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (then %w)", last, ctx.Err())
		case <-t.C:
		}
	}
}

func (b *Backend) once(ctx context.Context, method, path string, payload []byte) (int, []byte, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	for k, vs := range b.headers {
		req.Header[k] = append([]string(nil), vs...)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := b.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("read answer: %w", err)
	}
	return resp.StatusCode, data, nil
}

// exceptionLine matches a Python traceback's exception line.
var exceptionLine = regexp.MustCompile(`^[A-Za-z_][\w.]*(Error|Exception): \S`)

// agentStatus matches the head's relay of a job agent's error answer.
var agentStatus = regexp.MustCompile(`Request failed with status code (4\d\d)\b`)

// wrappedStatus is the 4xx a job agent answered when the head relayed it as
// a 500 ("RuntimeError: Request failed with status code 400: …"), else 0.
func wrappedStatus(data []byte) int {
	if m := agentStatus.FindSubmatch(data); m != nil {
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	return 0
}

// rayMessage extracts Ray's message from an error body: a JSON object's
// "message"/"msg"/"detail", else the last exception line of a Python
// traceback (Ray answers a rejected request with its traceback; for a relayed
// agent error the last one is the agent's own, e.g. "ValueError: Job with
// submission_id … already exists."), else the last non-empty line.
func rayMessage(data []byte) string {
	var obj map[string]any
	if json.Unmarshal(data, &obj) == nil {
		for _, k := range []string{"message", "msg", "detail", "error"} {
			if s, ok := obj[k].(string); ok && s != "" {
				return s
			}
		}
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); exceptionLine.MatchString(l) {
			return clip(l, 2000)
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return clip(l, 2000)
		}
	}
	return "(empty answer)"
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
