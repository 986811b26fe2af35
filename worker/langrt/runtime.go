package langrt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/frayhq/fray/objects"
)

// Options configures a Runtime. Every field but Command has a default.
type Options struct {
	// Command starts one runtime process, e.g. {"python3", "-m",
	// "frayhq.runtime"}. Required.
	Command []string
	// Procs is how many processes serve tasks, one task each at a time.
	// Defaults to 1.
	Procs int
	// Imports are the modules every process imports at start; what they
	// register is served. Paths go first on the module search path.
	Imports []string
	Paths   []string
	// Env is the processes' environment. Defaults to this process's.
	Env []string
	// Objects serves the processes' fetches of object refs. Without it a
	// fetch fails with a clear error.
	Objects *objects.Store
	// StartTimeout bounds a process's start, imports included (heavy ML
	// libraries take a while). Defaults to 5 minutes.
	StartTimeout time.Duration
	// Logger receives the code's output and the runtime's events.
	// Defaults to slog.Default().
	Logger *slog.Logger
}

// Runtime is a language runtime: a pool of processes serving tasks, and a
// process per actor instance.
type Runtime struct {
	o     Options
	hello *Frame
	log   *slog.Logger
	pool  *pool

	mu     sync.Mutex
	closed bool
	actors map[*proc]struct{} // actor processes alive
}

// Start starts the task processes and waits until each has said hello. A
// process that cannot start (a bad command, an import error) fails Start
// with a *StartError carrying the runtime's own report (traceback) and the
// tail of its stderr.
func Start(ctx context.Context, o Options) (*Runtime, error) {
	if len(o.Command) == 0 || o.Command[0] == "" {
		return nil, errors.New("langrt: no runtime command")
	}
	if o.Procs == 0 {
		o.Procs = 1
	}
	if o.Procs < 0 {
		return nil, fmt.Errorf("langrt: %d processes: want at least 1", o.Procs)
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	rt := &Runtime{o: o, log: o.Logger.With("runtime", strings.Join(o.Command, " ")), actors: map[*proc]struct{}{}}
	procs := make([]*proc, o.Procs)
	errs := make([]error, o.Procs)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			procs[i], errs[i] = startProc(ctx, rt.procConfig("task"))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, p := range procs {
			if p != nil {
				p.stop(0)
			}
		}
		return nil, errs[slices.IndexFunc(errs, func(e error) bool { return e != nil })]
	}
	rt.hello = procs[0].hello
	rt.pool = newPool(rt, procs)
	rt.log.Info("runtime started", "lang", rt.hello.Lang, "version", rt.hello.LangVersion, "processes", o.Procs,
		"functions", rt.hello.Functions, "classes", rt.Classes())
	return rt, nil
}

// procConfig is the configuration of one process; kind names what the
// requests it serves are in its log lines ("task" or "actor").
func (rt *Runtime) procConfig(kind string) *procConfig {
	return &procConfig{command: rt.o.Command, env: rt.o.Env, imports: rt.o.Imports, paths: rt.o.Paths,
		startTimeout: rt.o.StartTimeout, log: rt.log, onFetch: rt.fetch,
		onLog: func(p *proc, id uint64, stream, line string) {
			rt.log.Info("output", kind, p.label(id), "pid", p.pid, "stream", stream, "line", line)
		}}
}

// Lang is the runtime's language and version, as its hello said.
func (rt *Runtime) Lang() (lang, version string) { return rt.hello.Lang, rt.hello.LangVersion }

// Functions lists the task functions the runtime serves.
func (rt *Runtime) Functions() []string { return slices.Clone(rt.hello.Functions) }

// Classes lists the actor classes the runtime serves.
func (rt *Runtime) Classes() []string {
	out := make([]string, len(rt.hello.Classes))
	for i, c := range rt.hello.Classes {
		out[i] = c.Name
	}
	return out
}

// fetch answers a process's fetch frame from the object store.
func (rt *Runtime) fetch(p *proc, f *Frame) {
	reply := &Frame{T: FrameObject, ID: f.ID}
	switch {
	case f.Ref == nil:
		reply.Err = &LangError{Type: "fray.BadFetch", Message: "fetch frame without a ref"}
	case rt.o.Objects == nil:
		reply.Err = &LangError{Type: "fray.NoObjectStore", Message: "this worker has no object store to read " + f.Ref.String() + " from"}
	default:
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		b, err := rt.o.Objects.GetBytes(ctx, *f.Ref)
		cancel()
		if err != nil {
			reply.Err = &LangError{Type: "fray.ObjectError", Message: fmt.Sprintf("read %s: %v", f.Ref, err)}
		} else {
			reply.Value = b
		}
	}
	if err := p.out.write(reply); err != nil && p.alive() {
		rt.log.Warn("answer a runtime's fetch", "pid", p.pid, "err", err)
	}
}

// startActorProc starts a process for one actor instance.
func (rt *Runtime) startActorProc(ctx context.Context) (*proc, error) {
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		return nil, errors.New("langrt: runtime closed")
	}
	rt.mu.Unlock()
	p, err := startProc(ctx, rt.procConfig("actor"))
	if err != nil {
		return nil, err
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.closed {
		rt.mu.Unlock()
		p.stop(0)
		rt.mu.Lock()
		return nil, errors.New("langrt: runtime closed")
	}
	rt.actors[p] = struct{}{}
	return p, nil
}

func (rt *Runtime) forgetActorProc(p *proc) {
	rt.mu.Lock()
	delete(rt.actors, p)
	rt.mu.Unlock()
}

// Close stops every process: task processes get grace to exit after a stop
// frame (their tasks are over by now: the worker drained), actor processes
// are killed. It waits until all are gone.
func (rt *Runtime) Close() error {
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		return nil
	}
	rt.closed = true
	var all []*proc
	for p := range rt.actors {
		all = append(all, p)
	}
	rt.mu.Unlock()
	for _, p := range all {
		p.kill()
	}
	rt.pool.close()
	for _, p := range all {
		<-p.dead
	}
	return nil
}
