package langrt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Reading the runtime's frames.
//
// One goroutine at a time reads the frame pipe: the one holding the reader
// token. A request waiting for its answer takes the token when it is free
// and reads the pipe itself, so that the answer wakes the goroutine that
// waits for it, not a reader goroutine that would then wake it (a
// hand-off may wake another thread: tens of microseconds on a small VM,
// about 20 µs of a Python actor call's round trip). While it
// waits it dispatches whatever else comes as the background reader does:
// other requests' answers to their channels, log frames to onLog, fetch
// frames to onFetch. Once its answer is in, it hands the token to the
// oldest request still waiting, or frees it.
//
// A token left free for idleRead goes to the background reader, so that
// lines the code prints while no request waits still reach the log and a
// runtime writing them never blocks for long. A request that finds the
// background reader holding the token interrupts its wait for the next
// frame (a read deadline in the past) and gets the token at once.
//
// The token may move in the middle of a frame: the frame reader keeps
// what it read of the frame in hand, and the next holder goes on from
// there (frameReader). So a request whose ctx ends while it holds the
// token, or whose process dies, returns at once, even while the process
// is stuck halfway through writing a frame, and passes the token on. A
// request still writing its own frame is not handed the token: while it
// writes, the background reader reads. The first read error (the pipe's
// end) is final: the process is killed, and every request still waiting
// gets the crash error once it is reaped, as before.

// idleRead is how long the reader token stays free, while no request
// waits, before the background reader takes it.
const idleRead = 20 * time.Millisecond

// token states, guarded by proc.mu.
const (
	tokFree       = iota // nobody reads; the idle timer runs
	tokBackground        // the background reader reads
	tokRequest           // a waiting request reads
	tokDone              // the pipe ended: nobody reads again
)

// tokenFrame, sent on a waiting request's channel, hands it the token.
// Never on the wire.
var tokenFrame = &Frame{T: "reader token"}

// errInterrupted: the token holder's read was interrupted (a request
// wants the token, the holder's ctx ended, the process died); the frame
// reader keeps any part of a frame it read for the next holder.
var errInterrupted = errors.New("langrt: read interrupted")

// startReading sets up the token machinery once the hello is in, and
// starts the background reader with the token.
func (p *proc) startReading() {
	p.idle = time.NewTimer(time.Hour)
	p.idle.Stop()
	p.kick = make(chan struct{}, 1)
	p.mu.Lock()
	p.tok = tokBackground
	p.mu.Unlock()
	go p.background()
}

// interrupt ends the token holder's wait for its next frame.
func (p *proc) interrupt() { p.inF.SetReadDeadline(time.Unix(1, 0)) }

func (p *proc) kickBackground() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// waitFrame reads the next frame. A read deadline (an interrupt) clears
// the deadline and returns errInterrupted; the caller then decides whether
// to give the token up.
func (p *proc) waitFrame() (*Frame, error) {
	f, err := p.in.read()
	if err != nil && interrupted(err) {
		p.inF.SetReadDeadline(time.Time{})
		return nil, errInterrupted
	}
	return f, err
}

// background reads frames while it holds the token, and takes the token
// when it has been free for idleRead (or the process died). It closes the
// pipe once the pipe ended.
func (p *proc) background() {
	defer p.inF.Close()
	dead := p.dead
	for {
		p.mu.Lock()
		switch p.tok {
		case tokDone:
			p.mu.Unlock()
			return
		case tokBackground:
			p.mu.Unlock()
			p.readIdle()
			continue
		}
		p.mu.Unlock()
		select {
		case <-p.idle.C:
			p.mu.Lock()
			mine := p.idleFiredLocked()
			p.mu.Unlock()
			if mine {
				p.readIdle()
			}
		case <-p.kick:
			p.mu.Lock()
			if p.tok == tokFree {
				p.tok = tokBackground
			}
			p.mu.Unlock()
		case <-dead:
			// A request reading a pipe that something the process left
			// behind keeps open gives up now (readFor).
			dead = nil
			p.interrupt()
		}
	}
}

// readIdle reads and dispatches frames until a request waits (the token
// then goes to it) or the pipe ends.
func (p *proc) readIdle() {
	for {
		f, err := p.waitFrame()
		switch {
		case errors.Is(err, errInterrupted):
		case err != nil:
			p.pipeEnded(err)
			return
		default:
			p.dispatch(f)
		}
		p.mu.Lock()
		if len(p.pending) > len(p.writing) {
			p.passTokenLocked()
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
}

// passTokenLocked gives the token up: to the oldest waiting request that
// has written its frame, else to nobody (the background reader takes it
// after idleRead; at once if the process died or a request is still
// writing). Called by the holder, with p.mu held.
func (p *proc) passTokenLocked() {
	var next uint64
	for id := range p.pending {
		if _, w := p.writing[id]; !w && (next == 0 || id < next) {
			next = id
		}
	}
	if next != 0 {
		p.tok = tokRequest
		p.pending[next] <- tokenFrame // an empty channel: nobody else sends to a pending request while it waits
		return
	}
	p.tok, p.freeAt = tokFree, time.Now()
	if len(p.writing) > 0 {
		p.kickBackground() // read what the runtime says while the request writes
		return
	}
	select {
	case <-p.dead:
		p.kickBackground()
		return
	default:
	}
	// Arming a timer wakes another thread of this process (the Go
	// runtime's poller) when its deadline is the nearest: with a request
	// every few hundred microseconds that is a wake-up per request. So the
	// timer is armed once, and the background reader arms it again for the
	// rest of idleRead when it fires early (idleFired).
	if !p.idleArmed {
		p.idleArmed = true
		p.idle.Reset(idleRead)
	}
}

// idleFiredLocked is the idle timer's firing: true when the token has
// been free for idleRead and is the background reader's now.
func (p *proc) idleFiredLocked() bool {
	p.idleArmed = false
	if p.tok != tokFree {
		return false // the next release arms it again
	}
	if left := idleRead - time.Since(p.freeAt); left > 0 {
		p.idleArmed = true
		p.idle.Reset(left)
		return false
	}
	p.tok = tokBackground
	return true
}

// pipeEnded is the holder's read failing: the pipe broke or the process
// closed it (exited). Nobody reads again, and the process is killed.
func (p *proc) pipeEnded(err error) {
	if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
		p.cfg.log.Warn("runtime pipe broken; killing the process", "pid", p.pid, "err", err)
	}
	p.mu.Lock()
	p.tok = tokDone
	p.mu.Unlock()
	p.kickBackground()
	p.kill()
}

// dispatch delivers a frame read by the token holder.
func (p *proc) dispatch(f *Frame) {
	switch f.T {
	case FrameResult, FrameError:
		p.mu.Lock()
		ch := p.pending[f.ID]
		p.forgetLocked(f.ID) // writing too: answered before its writer noticed
		p.mu.Unlock()
		if ch != nil {
			ch <- f
		}
	case FrameLog:
		p.cfg.onLog(p, f.ID, f.Stream, f.Line)
	case FrameFetch:
		go p.cfg.onFetch(p, f)
	default:
		p.cfg.log.Warn("runtime sent an unexpected frame; ignored", "pid", p.pid, "type", f.T)
	}
}

// request sends f (its ID assigned here) and waits for the result or error
// frame answering it. It returns ErrCrashed (wrapped, with how the process
// ended) when the process dies first, and ctx's cause when ctx ends first;
// the caller then decides the process's fate.
func (p *proc) request(ctx context.Context, f *Frame, label string) (*Frame, error) {
	ch := make(chan *Frame, 1)
	p.mu.Lock()
	p.next++
	f.ID = p.next
	p.pending[f.ID] = ch
	p.labels[f.ID] = label
	p.writing[f.ID] = struct{}{}
	p.mu.Unlock()
	broken, err := p.out.writeCtx(ctx, f)
	p.mu.Lock()
	delete(p.writing, f.ID)
	if err != nil {
		p.mu.Unlock()
		p.leave(f.ID, ch)
		if broken {
			// Half a frame went out: nothing can follow it on the stream.
			p.cfg.log.Warn("request given up in the middle of its frame; killing the runtime process", "pid", p.pid, "err", err)
			p.kill()
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		select {
		case <-p.dead:
			return nil, p.crashErr()
		case <-time.After(time.Second):
		}
		return nil, fmt.Errorf("langrt: send %s frame to runtime process %d: %w", f.T, p.pid, err)
	}
	if _, waiting := p.pending[f.ID]; !waiting {
		// Answered while it wrote (the token holder read the answer): it
		// is in ch, or about to be.
		p.mu.Unlock()
		return <-ch, nil
	}
	switch p.tok {
	case tokFree:
		p.tok = tokRequest
		p.mu.Unlock()
		return p.readFor(ctx, f.ID, ch)
	case tokBackground:
		p.mu.Unlock()
		p.interrupt() // it hands the token to the oldest waiting request
	default:
		p.mu.Unlock()
	}
	for {
		select {
		case r := <-ch:
			if r == tokenFrame {
				return p.readFor(ctx, f.ID, ch)
			}
			return r, nil
		case <-p.dead:
			if r := p.leave(f.ID, ch); r != nil {
				return r, nil // an answer that came just before the process went
			}
			return nil, p.crashErr()
		case <-ctx.Done():
			if r := p.leave(f.ID, ch); r != nil {
				return r, nil
			}
			return nil, context.Cause(ctx)
		}
	}
}

// readFor reads frames, holding the token, until request id's answer.
func (p *proc) readFor(ctx context.Context, id uint64, ch chan *Frame) (*Frame, error) {
	stop := context.AfterFunc(ctx, p.interrupt)
	defer stop()
	for {
		f, err := p.waitFrame()
		var cause error
		switch {
		case errors.Is(err, errInterrupted):
			// Our ctx ended, or the process died and the pipe is kept
			// open (the background reader reads on to its end), or a
			// stale interrupt: read on. Any part of a frame read so far
			// stays with the frame reader for the next holder.
			select {
			case <-p.dead:
				cause = p.crashErr()
			default:
			}
		case err != nil:
			p.pipeEnded(err)
			<-p.dead
			return nil, p.crashErr()
		case (f.T == FrameResult || f.T == FrameError) && f.ID == id:
			p.mu.Lock()
			p.forgetLocked(id)
			p.passTokenLocked()
			p.mu.Unlock()
			return f, nil
		default:
			p.dispatch(f)
		}
		if cause == nil && ctx.Err() != nil {
			cause = context.Cause(ctx)
		}
		if cause == nil {
			continue
		}
		p.mu.Lock()
		p.forgetLocked(id)
		p.passTokenLocked()
		p.mu.Unlock()
		return nil, cause
	}
}

// leave forgets waiting request id, passing on the token if it was just
// handed to it. It returns the request's answer if that came meanwhile.
func (p *proc) leave(id uint64, ch chan *Frame) *Frame {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forgetLocked(id)
	select {
	case r := <-ch:
		if r != tokenFrame {
			return r
		}
		p.passTokenLocked()
	default:
	}
	return nil
}

func (p *proc) forgetLocked(id uint64) {
	delete(p.pending, id)
	delete(p.labels, id)
	delete(p.writing, id)
}
