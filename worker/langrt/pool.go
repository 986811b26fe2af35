package langrt

import (
	"context"
	"sync"
	"time"
)

// pool is the set of processes serving tasks, one task each at a time. A
// process that dies (or is killed for a timeout or a drain) is replaced.
type pool struct {
	rt   *Runtime
	wake chan struct{} // a token when idle may hold a process

	mu     sync.Mutex
	idle   []*proc
	all    map[*proc]struct{}
	closed bool
	done   chan struct{} // closed by close
	wg     sync.WaitGroup
}

func newPool(rt *Runtime, procs []*proc) *pool {
	pl := &pool{rt: rt, wake: make(chan struct{}, 1), all: map[*proc]struct{}{}, done: make(chan struct{})}
	for _, p := range procs {
		pl.add(p)
	}
	return pl
}

// add makes p available and replaces it when it dies. Called with p new.
func (pl *pool) add(p *proc) {
	pl.mu.Lock()
	if pl.closed {
		pl.mu.Unlock()
		p.stop(0)
		return
	}
	pl.all[p] = struct{}{}
	pl.wg.Add(1)
	pl.mu.Unlock()
	pl.release(p)
	go func() {
		defer pl.wg.Done()
		select {
		case <-p.dead:
		case <-pl.done:
			return
		}
		pl.mu.Lock()
		delete(pl.all, p)
		pl.mu.Unlock()
		pl.replace()
	}()
}

// replace starts a process in place of one that died, retrying with a
// growing delay while starting fails, until the pool closes.
func (pl *pool) replace() {
	delay := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-pl.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		p, err := startProc(ctx, pl.rt.procConfig("task"))
		cancel()
		if err == nil {
			pl.add(p)
			return
		}
		select {
		case <-pl.done:
			return
		default:
		}
		pl.rt.log.Error("cannot replace a runtime process; retrying", "in", delay, "err", err)
		select {
		case <-pl.done:
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// acquire takes an idle live process, waiting for one until ctx ends.
func (pl *pool) acquire(ctx context.Context) (*proc, error) {
	for {
		pl.mu.Lock()
		var p *proc
		for len(pl.idle) > 0 && p == nil {
			p = pl.idle[len(pl.idle)-1]
			pl.idle = pl.idle[:len(pl.idle)-1]
			if !p.alive() {
				p = nil // died idle: its watcher replaces it
			}
		}
		more := len(pl.idle) > 0
		pl.mu.Unlock()
		if more {
			pl.signal() // pass the token on to the next waiter
		}
		if p != nil {
			return p, nil
		}
		select {
		case <-pl.wake:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// release gives p back; a dead or killed process is dropped (its watcher
// replaces it).
func (pl *pool) release(p *proc) {
	if !p.alive() {
		return
	}
	pl.mu.Lock()
	pl.idle = append(pl.idle, p)
	pl.mu.Unlock()
	pl.signal()
}

func (pl *pool) signal() {
	select {
	case pl.wake <- struct{}{}:
	default:
	}
}

// close stops every process: a stop frame, then SIGKILL after a grace.
func (pl *pool) close() {
	pl.mu.Lock()
	if pl.closed {
		pl.mu.Unlock()
		return
	}
	pl.closed = true
	close(pl.done)
	all := make([]*proc, 0, len(pl.all))
	for p := range pl.all {
		all = append(all, p)
	}
	pl.mu.Unlock()
	pl.wg.Wait() // no replacement starts after this
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop(2 * time.Second)
		}()
	}
	wg.Wait()
}
