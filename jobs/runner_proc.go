package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/internal/reaper"
)

// proc is one running replica.
type proc struct {
	h    *host
	a    jobwire.Assignment
	stop chan bool // true: preempted (worker going away)
	done chan struct{}
	// started closes when the started event is published.
	started chan struct{}
	// env is the request's environment with the variables the worker
	// fills in itself (EnvFromWorker), set before the replica starts.
	env map[string]string
}

func (p *proc) publishStarted(ev jobwire.TaskEvent) {
	defer close(p.started)
	_ = p.h.publishEvent(ev)
}

func (p *proc) requestStop(preempted bool) {
	select {
	case p.stop <- preempted:
	default:
	}
}

// env is the replica's environment: the runner's Environ, then the device
// visibility variables for devs (on a worker with devices), then the
// request's, then fray's variables. A request that sets the kind's
// visibility variable itself (CUDA_VISIBLE_DEVICES, TPU_VISIBLE_CHIPS)
// takes over device selection: fray sets none of its device variables.
func (p *proc) environ(devs []string) []string {
	m := envMap(p.h.r.o.Environ)
	if pool := p.h.devs; pool != nil {
		if _, own := p.env[DeviceVisibilityVar(pool.kind)]; !own {
			for k, v := range deviceEnv(pool.kind, devs, len(pool.ids)) {
				m[k] = v
			}
		}
	}
	for k, v := range p.env {
		m[k] = v
	}
	m[EnvJobID] = p.a.Job
	m[EnvTaskIndex] = strconv.Itoa(p.a.Task)
	m[EnvNumTasks] = strconv.Itoa(p.a.NumTasks)
	m[EnvNamespace] = p.a.Namespace
	m[EnvClusterSpec] = p.h.spec
	m[EnvAttempt] = strconv.Itoa(p.a.Attempt)
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// requestEnv is the request's environment plus the variables it asks the
// worker to fill in (secrets): from the file given for the name
// (RunnerOptions.Secrets), else the worker's own environment. A name the
// worker has neither for fails the attempt with a message naming it.
func (p *proc) requestEnv() (map[string]string, string) {
	if len(p.a.EnvFromWorker) == 0 {
		return p.a.Env, ""
	}
	env := maps.Clone(p.a.Env)
	if env == nil {
		env = map[string]string{}
	}
	for _, name := range p.a.EnvFromWorker {
		if file, ok := p.h.r.o.Secrets[name]; ok {
			b, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Sprintf("env_from_worker %s: worker %s cannot read its secret file: %v", name, p.h.worker, err)
			}
			env[name] = strings.TrimRight(string(b), "\r\n")
			continue
		}
		if v, ok := envMap(p.h.r.o.Environ)[name]; ok {
			env[name] = v
			continue
		}
		if slices.Contains(CredentialVars, name) {
			return nil, fmt.Sprintf("env_from_worker %s: that is worker %s's own credential, never given to a job", name, p.h.worker)
		}
		return nil, fmt.Sprintf("env_from_worker %s: worker %s has no --secret %s=FILE and no %s in its environment", name, p.h.worker, name, name)
	}
	return env, ""
}

// takeDevices gets the attempt its devices: the lowest free ones of the
// worker. When too few are free (attempts the dispatcher already released
// may still be shutting down) it waits for them up to the runner's
// DeviceWait. It never shares a device: if they stay busy, or the attempt
// is stopped while it waits, it returns ok false and the exited event to
// report.
func (p *proc) takeDevices(ctx context.Context, lw *LogWriter) (devs []string, ev jobwire.TaskEvent, ok bool) {
	pool := p.h.devs
	if pool == nil || p.a.Devices <= 0 {
		return nil, ev, true
	}
	who := fmt.Sprintf("job %s task %d attempt %d", p.a.Job, p.a.Task, p.a.Attempt)
	wait := p.h.r.o.DeviceWait
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	logged := false
	for {
		devs, busy, freed := pool.take(p.a.Devices, who)
		if devs != nil {
			return devs, ev, true
		}
		if !logged {
			logged = true
			p.h.r.log.Info("task waits for devices", "job", p.a.Job, "task", p.a.Task, "attempt", p.a.Attempt, "need", p.a.Devices, "busy", busy)
		}
		select {
		case <-freed:
		case pre := <-p.stop:
			ev = p.event(jobwire.EventExited)
			ev.ExitCode = -1
			ev.Preempted = pre
			if !pre {
				ev.Error = "stopped"
			}
			return nil, ev, false
		case <-deadline.C:
			if devs, busy, _ = pool.take(p.a.Devices, who); devs != nil {
				return devs, ev, true
			}
			msg := fmt.Sprintf("cannot start: devices busy: needs %d %s device(s) of worker %s, %s (waited %s)",
				p.a.Devices, pool.kind, p.h.worker, busy, wait)
			_ = lw.Line(ctx, "fray: "+msg)
			_ = lw.Flush(ctx)
			ev = p.event(jobwire.EventExited)
			ev.ExitCode = -1
			ev.Error = msg
			ev.DevicesBusy = true
			return nil, ev, false
		}
	}
}

func (p *proc) event(kind string) jobwire.TaskEvent {
	return jobwire.TaskEvent{Job: p.a.Job, Run: p.a.Run, Task: p.a.Task, Attempt: p.a.Attempt, Kind: kind}
}

func (p *proc) run(ctx context.Context) jobwire.TaskEvent {
	defer close(p.done)
	lw := NewWorkerLogWriter(p.h.js, p.a.Job, p.a.Task, p.a.Attempt, p.h.worker)
	lw.Dedup(fmt.Sprintf("%s:%d:%d", p.a.Run, p.a.Task, p.a.Attempt))
	devs, ev, ok := p.takeDevices(ctx, lw)
	if !ok {
		return p.h.publishEvent(ev)
	}
	var code int
	var errMsg string
	var preempted, stopped bool
	if p.env, errMsg = p.requestEnv(); errMsg != "" {
		code = 1
	} else if p.a.Func != "" {
		code, errMsg, preempted, stopped = p.runFunc(ctx, lw, devs)
	} else {
		code, errMsg, preempted, stopped = p.runCommand(ctx, lw, devs)
	}
	if p.h.devs != nil {
		p.h.devs.release(devs) // the process is gone
	}
	if p.started != nil {
		<-p.started // the exit is reported after the start, never before
	}
	ev = p.event(jobwire.EventExited)
	ev.ExitCode = code
	ev.Error = errMsg
	ev.Preempted = preempted
	if stopped && !preempted && ev.Error == "" {
		ev.Error = "stopped"
	}
	return p.h.publishEvent(ev)
}

// runCommand runs the argv in its own process group.
func (p *proc) runCommand(ctx context.Context, lw *LogWriter, devs []string) (code int, errMsg string, preempted, stopped bool) {
	argv := p.a.Argv
	pyJob := p.h.r.o.Python != "" && isFrayhqJob(argv)
	if pyJob {
		argv = append([]string{p.h.r.o.Python}, argv[1:]...)
	}
	if len(p.a.Setup) > 0 {
		script := strings.Join(p.a.Setup, " && ") + ` && exec "$@"`
		argv = append([]string{"/bin/sh", "-c", script, "sh"}, argv...)
	}
	if wd := p.a.Workdir; wd != "" {
		if fi, err := os.Stat(wd); err != nil || !fi.IsDir() {
			msg := fmt.Sprintf("workdir %s: not a directory on this worker", wd)
			if err != nil {
				msg = fmt.Sprintf("workdir %s: %v", wd, errors.Unwrap(err))
			}
			_ = lw.Line(ctx, "fray: cannot start "+argv[0]+": "+msg)
			_ = lw.Flush(ctx)
			return 127, "cannot start " + argv[0] + ": " + msg, false, false
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = p.environ(devs)
	if pyJob {
		cmd.Env = withPythonPath(cmd.Env, p.h.r.o.PythonPath)
	}
	cmd.Dir = p.a.Workdir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr, pw, err := os.Pipe()
	if err != nil {
		return -1, "cannot create output pipe: " + err.Error(), false, false
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pw.Close()
		pr.Close()
		_ = lw.Line(ctx, "fray: cannot start "+argv[0]+": "+err.Error())
		_ = lw.Flush(ctx)
		return 127, fmt.Sprintf("cannot start %s: %v", argv[0], err), false, false
	}
	pw.Close()
	pid := cmd.Process.Pid
	if stopReaper, err := reaper.Start(pid); err != nil {
		p.h.r.log.Warn("job processes may outlive a killed worker: no reaper", "job", p.a.Job, "task", p.a.Task, "err", err)
	} else {
		defer stopReaper() // on return: after the sweep below has killed the group
	}
	ev := p.event(jobwire.EventStarted)
	ev.TimeMS = jobwire.NowMS()
	ev.Devices = devs
	p.started = make(chan struct{})
	go p.publishStarted(ev)
	out := newReplicaOutput(pr, p.h.r.o.outputIdle)
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		if err := pumpLines(ctx, out, lw); err != nil {
			p.h.r.log.Warn("job logs lost", "job", p.a.Job, "task", p.a.Task, "err", err)
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var waitErr error
	var kill <-chan time.Time
loop:
	for {
		select {
		case waitErr = <-exited:
			break loop
		case pre := <-p.stop:
			if !stopped {
				stopped, preempted = true, pre
				_ = syscall.Kill(-pid, syscall.SIGTERM)
				t := time.NewTimer(p.h.r.o.Grace)
				defer t.Stop()
				kill = t.C
			}
		case <-kill:
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	// Sweep what the replica left behind in its group, so nothing outlives
	// it and nobody holds the output pipe open; then every line left in the
	// pipe is published, however long that takes (see replicaOutput).
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	out.end()
	<-pumped
	pr.Close()
	if out.Cut() {
		p.h.r.log.Warn("job output pipe held open by a process outside the job's process group; its further output is not logged",
			"job", p.a.Job, "task", p.a.Task, "attempt", p.a.Attempt)
		_ = lw.Line(ctx, "fray: a process that left the job's process group (setsid) still holds its output open; what it prints from now on is not logged")
		_ = lw.Flush(ctx)
	}
	code = cmd.ProcessState.ExitCode()
	switch {
	case stopped && !preempted:
		// Say how the stop ended it: the grace period's SIGTERM, or the
		// SIGKILL after it (a process that ignored the SIGTERM).
		how := fmt.Sprintf("exited with code %d", code)
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			how = "killed by " + signalName(ws.Signal())
		}
		return code, "stopped (" + how + ")", false, true
	case stopped:
		return code, "", preempted, true
	case waitErr == nil:
		return 0, "", false, false
	default:
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return -1, fmt.Sprintf("killed by signal %s", ws.Signal()), false, false
			}
			return code, fmt.Sprintf("exited with code %d", code), false, false
		}
		return -1, waitErr.Error(), false, false
	}
}

// runFunc runs a registered function in-process.
func (p *proc) runFunc(ctx context.Context, lw *LogWriter, devs []string) (code int, errMsg string, preempted, stopped bool) {
	fn := p.h.r.o.Funcs[p.a.Func]
	if fn == nil {
		names := make([]string, 0, len(p.h.r.o.Funcs))
		for n := range p.h.r.o.Funcs {
			names = append(names, n)
		}
		sort.Strings(names)
		return 127, fmt.Sprintf("function %q is not registered on worker %s (registered: %s)", p.a.Func, p.h.worker, strings.Join(names, ", ")), false, false
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		_ = pumpLines(ctx, pr, lw)
	}()
	sev := p.event(jobwire.EventStarted)
	sev.TimeMS = jobwire.NowMS()
	sev.Devices = devs
	p.started = make(chan struct{})
	go p.publishStarted(sev)
	res := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				res <- fmt.Errorf("panic: %v", v)
			}
		}()
		res <- fn(fctx, FuncEnv{JobID: p.a.Job, Namespace: p.a.Namespace, Task: p.a.Task, NumTasks: p.a.NumTasks, Attempt: p.a.Attempt, Arg: p.a.Arg, Env: p.env, Devices: devs, Log: pw})
	}()
	var err error
	select {
	case err = <-res:
	case pre := <-p.stop:
		stopped, preempted = true, pre
		cancel()
		select {
		case err = <-res:
		case <-time.After(p.h.r.o.Grace):
			err = errors.New("did not return within the grace period after stop")
		}
	}
	pw.Close()
	<-pumped
	switch {
	case stopped:
		return -1, "", preempted, true
	case err != nil:
		return 1, err.Error(), false, false
	}
	return 0, "", false, false
}

// signalName names the signals a stop sends as a person knows them.
func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL after the grace period"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return "signal " + sig.String()
}
