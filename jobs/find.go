package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
)

// FindReply answers a jobwire.FindRequest once what was found is recorded.
type FindReply struct {
	V int `cbor:"v"`
	// Found counts the jobs found on a backend (0 or 1 for an ID).
	Found int `cbor:"found"`
	// Record is the job's record after the look-up (ID requests that found
	// it, or that found a record the dispatcher had already).
	Record *Record `cbor:"record,omitempty"`
	// Code is jobwire.CodeOK, CodeInvalid (a malformed request) or CodeInternal (a
	// backend could not be asked; Error says which and why).
	Code  string `cbor:"code,omitempty"`
	Error string `cbor:"error,omitempty"`
}

// BackendsReply lists a dispatcher's backends.
type BackendsReply struct {
	V int `cbor:"v"`
	// Default is the backend of jobs that name no TargetCluster.
	Default  string        `cbor:"default"`
	Backends []BackendInfo `cbor:"backends"`
}

// BackendInfo describes one backend of a dispatcher.
type BackendInfo struct {
	// Name is what ResourceConfig.TargetCluster selects it by.
	Name string `cbor:"name"`
	// Kind is "native", "ray" or "iris".
	Kind string `cbor:"kind"`
	// Address is the Ray dashboard or Iris controller URL ("" for native).
	Address string `cbor:"address,omitempty"`
}

// findTimeout bounds a look-up: a backend asked over HTTP, with retries.
const findTimeout = 45 * time.Second

// request sends one dispatcher request and decodes its reply; ok is false
// when no dispatcher serves the subject.
func request(ctx context.Context, nc *nats.Conn, subject string, req, rep any) (ok bool, err error) {
	body, err := objects.Marshal(req)
	if err != nil {
		return false, err
	}
	rctx, cancel := context.WithTimeout(ctx, findTimeout)
	defer cancel()
	msg, err := nc.RequestWithContext(rctx, subject, body)
	if errors.Is(err, nats.ErrNoResponders) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: %s: %v", ErrNoDispatcher, subject, err)
	}
	if err := objects.Unmarshal(msg.Data, rep); err != nil {
		return false, fmt.Errorf("jobs: %s: bad reply: %w", subject, err)
	}
	return true, nil
}

// Find asks the dispatchers to look job id up on their external backends
// and record it, and returns its record. It returns an error wrapping
// ErrNotFound when no backend has the job and no record exists.
func (c *Client) Find(ctx context.Context, id string) (*Record, error) {
	var rep FindReply
	ok, err := request(ctx, c.nc, jobwire.SubjectFind, &jobwire.FindRequest{V: jobwire.WireVersion, ID: id}, &rep)
	if err != nil {
		return nil, err
	}
	if ok && rep.Code != jobwire.CodeOK {
		return nil, fmt.Errorf("jobs: find %s on the backends: %s", id, rep.Error)
	}
	if ok && rep.Record != nil {
		return rep.Record, nil
	}
	r, _, err := c.store.Get(ctx, id)
	return r, err
}

// FindAll asks the dispatchers to record every job of fray's their
// external backends list, and returns how many they found.
func (c *Client) FindAll(ctx context.Context) (int, error) {
	var rep FindReply
	ok, err := request(ctx, c.nc, jobwire.SubjectFind, &jobwire.FindRequest{V: jobwire.WireVersion, All: true}, &rep)
	if err != nil || !ok {
		return 0, err
	}
	if rep.Code != jobwire.CodeOK {
		return rep.Found, fmt.Errorf("jobs: list the backends' jobs: %s", rep.Error)
	}
	return rep.Found, nil
}

// Backends asks a dispatcher which backends it runs jobs on; ok is false
// when no dispatcher answers.
func (c *Client) Backends(ctx context.Context) (rep *BackendsReply, ok bool, err error) {
	rep = &BackendsReply{}
	ok, err = request(ctx, c.nc, jobwire.SubjectBackends, &jobwire.BackendsRequest{V: jobwire.WireVersion}, rep)
	return rep, ok, err
}

// refresh asks the backends about the handle's job once per handle, when
// the client is one whose backend is the record (ClientOptions.AskBackends).
// A failed look-up is returned only when no record exists to fall back on.
func (h *Handle) refresh(ctx context.Context) error {
	if !h.c.askBackends {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.refreshed {
		return nil
	}
	_, err := h.c.Find(ctx, h.id)
	if err == nil || errors.Is(err, ErrNotFound) {
		h.refreshed = true
		return nil
	}
	if _, _, gerr := h.c.store.Get(ctx, h.id); gerr == nil {
		return nil // the record we have will do
	}
	return err
}
