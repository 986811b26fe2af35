package actors

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Group is a set of actors of one class named name-0 … name-(count-1),
// created concurrently. A member's constructor failure spares the others.
type Group struct {
	c     *Client
	name  string
	ns    string
	count int

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced on each member settling
	members    []*Handle     // nil until ready
	errs       []error       // non-nil once failed
	settled    int
	discovered map[int]bool
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

// CreateActorGroup starts creating count members of className named
// name-0 … name-(count-1) with the same constructor argument and options
// and returns at once. Member i's context knows its Index (Current).
func (c *Client) CreateActorGroup(ctx context.Context, className, name string, count int, arg any, opts ...CreateOption) (*Group, error) {
	o, err := buildOpts(c.opts.Namespace, opts)
	if err != nil {
		return nil, err
	}
	if err := checkName("group name", name); err != nil {
		return nil, err
	}
	if count < 1 {
		return nil, fmt.Errorf("actors: group %s: count %d: want >= 1", name, count)
	}
	raw, err := encodeArg(arg)
	if err != nil {
		return nil, err
	}
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g := &Group{c: c, name: name, ns: o.namespace, count: count, changed: make(chan struct{}),
		members: make([]*Handle, count), errs: make([]error, count), discovered: map[int]bool{}, cancel: cancel}
	for i := range count {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			h, err := c.create(gctx, className, name+"-"+strconv.Itoa(i), name, i, raw, o)
			g.mu.Lock()
			defer g.mu.Unlock()
			if err != nil {
				g.errs[i] = fmt.Errorf("member %d: %w", i, err)
			} else {
				g.members[i] = h
			}
			g.settled++
			close(g.changed)
			g.changed = make(chan struct{})
		}()
	}
	return g, nil
}

// Name is the group's name.
func (g *Group) Name() string { return g.name }

// Len is the number of members asked for.
func (g *Group) Len() int { return g.count }

// ReadyCount is the number of members serving.
func (g *Group) ReadyCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, h := range g.members {
		if h != nil {
			n++
		}
	}
	return n
}

// IsDone reports whether every member is ready or has failed.
func (g *Group) IsDone() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.settled == g.count
}

// Members returns the ready members' handles in index order (nil for
// members not ready).
func (g *Group) Members() []*Handle {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*Handle(nil), g.members...)
}

// DiscoverNew returns the members that became ready since the last call.
func (g *Group) DiscoverNew() []*Handle {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*Handle
	for i, h := range g.members {
		if h != nil && !g.discovered[i] {
			g.discovered[i] = true
			out = append(out, h)
		}
	}
	return out
}

// GroupError reports the members that failed to start, by index.
type GroupError struct {
	Group  string
	Failed map[int]error
}

func (e *GroupError) Error() string {
	idx := make([]int, 0, len(e.Failed))
	for i := range e.Failed {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	s := fmt.Sprintf("actors: group %s: %d member(s) failed:", e.Group, len(idx))
	for _, i := range idx {
		s += " " + e.Failed[i].Error() + ";"
	}
	return s
}

// Unwrap exposes the member errors to errors.Is / errors.As.
func (e *GroupError) Unwrap() []error {
	out := make([]error, 0, len(e.Failed))
	for _, err := range e.Failed {
		out = append(out, err)
	}
	return out
}

// WaitReady waits until count members are ready, every member has settled,
// timeout passes (a negative timeout waits for ctx only) or ctx ends. It
// returns the ready members in index order and, when any member failed, a
// *GroupError; when fewer than count are ready at the end, the error says so.
func (g *Group) WaitReady(ctx context.Context, count int, timeout time.Duration) ([]*Handle, error) {
	if count > g.count {
		return nil, fmt.Errorf("actors: group %s: wait for %d of %d members", g.name, count, g.count)
	}
	var timer <-chan time.Time
	if timeout >= 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	for {
		g.mu.Lock()
		var ready []*Handle
		failed := map[int]error{}
		for i, h := range g.members {
			if h != nil {
				ready = append(ready, h)
			}
			if g.errs[i] != nil {
				failed[i] = g.errs[i]
			}
		}
		done := g.settled == g.count
		ch := g.changed
		g.mu.Unlock()
		var err error
		if len(failed) > 0 {
			err = &GroupError{Group: g.name, Failed: failed}
		}
		if len(ready) >= count || done {
			if len(ready) < count {
				err = errors.Join(fmt.Errorf("actors: group %s: only %d of %d wanted members ready", g.name, len(ready), count), err)
			}
			return ready, err
		}
		select {
		case <-ch:
		case <-timer:
			return ready, errors.Join(fmt.Errorf("%w: group %s: %d of %d wanted members ready after %s",
				context.DeadlineExceeded, g.name, len(ready), count, timeout), err)
		case <-ctx.Done():
			return ready, ctx.Err()
		}
	}
}

// Shutdown stops creating members and stops every member that started,
// each like Handle.Shutdown: once it returns, no member takes calls.
func (g *Group) Shutdown(ctx context.Context) error {
	g.cancel()
	g.wg.Wait()
	var errs []error
	for i := range g.count {
		err := g.c.stopActor(ctx, g.ns, g.name+"-"+strconv.Itoa(i), "group shut down")
		if err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
