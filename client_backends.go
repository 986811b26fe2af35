package fray

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/frayhq/fray/dispatcher"
)

// ErrBackendMismatch reports a ray?/iris? spec with nats= whose address=
// or controller= is not where that broker's dispatcher runs the jobs.
var ErrBackendMismatch = errors.New("fray: the spec's backend is not the broker's")

// backendIsRecord reports whether sp makes the external backend the record
// of the jobs: a ray?/iris? spec without nats=, whose broker lives only in
// this process. Such a client asks the backend about every job it reads
// (jobs.ClientOptions.AskBackends), so jobs submitted from any process can
// be seen, followed, adopted and stopped. This is the one place that
// decides it, for the Go client and everything built on it.
func backendIsRecord(sp Spec) bool {
	return (sp.Kind == SpecRay || sp.Kind == SpecIris) && len(sp.URLs) == 0
}

// awaitDispatcher waits until the in-process dispatcher of a client whose
// backend is the record serves look-ups: a look-up nobody answers would
// read as "no such job".
func (c *Client) awaitDispatcher(ctx context.Context) error {
	if !backendIsRecord(c.spec) {
		return nil
	}
	jc, err := c.Jobs(ctx)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		_, ok, err := jc.Backends(wctx)
		if ok {
			return nil
		}
		if err != nil || wctx.Err() != nil {
			return fmt.Errorf("fray: the in-process dispatcher for %s did not start: %v", c.spec.Kind, errors.Join(err, wctx.Err()))
		}
		select {
		case <-wctx.Done():
		case <-time.After(10 * time.Millisecond): // poll for its subscription
		}
	}
}

// specAddress is the backend URL a ray?/iris? spec names.
func specAddress(sp Spec) (param, addr string) {
	if sp.Kind == SpecRay {
		return "address", sp.Params["address"]
	}
	return "controller", sp.Params["controller"]
}

func sameURL(a, b string) bool {
	return strings.EqualFold(strings.TrimRight(a, "/"), strings.TrimRight(b, "/"))
}

// checkBackend makes sure a ray?/iris? spec with nats= names the backend
// the broker's dispatcher drives: the broker runs the jobs, so a different
// address= or controller= in the spec would be silently ignored. A broker
// with no dispatcher answering cannot be checked and is let be.
func (c *Client) checkBackend(ctx context.Context) error {
	sp := c.spec
	if (sp.Kind != SpecRay && sp.Kind != SpecIris) || len(sp.URLs) == 0 {
		return nil
	}
	jc, err := c.Jobs(ctx)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rep, ok, err := jc.Backends(cctx)
	if err != nil || !ok {
		c.log.Warn("could not ask the broker's dispatcher which backends it drives", "spec", sp.Raw, "err", err)
		return nil
	}
	param, addr := specAddress(sp)
	want := sp.Params["name"]
	var have []string
	for _, b := range rep.Backends {
		if b.Kind == dispatcher.BackendNative {
			continue
		}
		have = append(have, fmt.Sprintf("%s %s at %s", b.Kind, b.Name, b.Address))
		if b.Kind != sp.Kind || (want != "" && b.Name != want) {
			continue
		}
		if !sameURL(b.Address, addr) {
			return fmt.Errorf("%w: the spec says %s=%s, but the broker at %s runs %s jobs at %s; drop %s= from the spec or make the two agree",
				ErrBackendMismatch, param, addr, strings.Join(sp.URLs, ","), sp.Kind, b.Address, param)
		}
		return nil
	}
	if len(have) == 0 {
		have = []string{"none"}
	}
	return fmt.Errorf("%w: the spec says %s=%s, but the broker at %s has no %s backend (it has: %s)",
		ErrBackendMismatch, param, addr, strings.Join(sp.URLs, ","), sp.Kind, strings.Join(have, "; "))
}
