package jobs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// fillPipe is a Python program that writes 16-byte lines to its stdout
// without blocking until the reader has taken nothing for a second (the
// pipe is full), then writes how many it wrote to the file argv[1].
const fillPipe = `
import fcntl, os, sys, time
fcntl.fcntl(1, fcntl.F_SETFL, fcntl.fcntl(1, fcntl.F_GETFL) | os.O_NONBLOCK)
n = quiet = 0
while quiet < 20:
    try:
        os.write(1, b"%015d\n" % n)
        n, quiet = n + 1, 0
    except BlockingIOError:
        quiet += 1
        time.sleep(0.05)
with open(sys.argv[1], "w") as f:
    f.write(str(n))
`

// A replica that exits with its output pipe full to the byte (a slow
// broker held the pump back) is no process outside its group holding the
// pipe: every line is published and no "fray:" note is added.
func TestAReplicaThatExitsWithItsOutputPipeFullLosesNoLineAndGetsNoNote(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	prog, count := filepath.Join(dir, "fill.py"), filepath.Join(dir, "count")
	if err := os.WriteFile(prog, []byte(fillPipe), 0o644); err != nil {
		t.Fatal(err)
	}
	o := jobs.RunnerOptions{CPU: 2}
	jobs.SetOutputIdle(&o, 200*time.Millisecond)
	open := make(chan struct{})
	var opened sync.Once
	openGate := func() { opened.Do(func() { close(open) }) }
	rig := startRunnerWith(t, o, func(js jetstream.JetStream) jetstream.JetStream { return gatedLogs{js, open} })
	t.Cleanup(openGate)
	task := gpuTask("/t/fullpipe", 0, py+" "+prog+" "+count)
	rig.assign(task)
	var n int
	frayt.Eventually(t, 30*time.Second, "the replica filled its pipe", func() bool {
		b, err := os.ReadFile(count)
		if err != nil || len(b) == 0 {
			return false
		}
		n, err = strconv.Atoi(string(b))
		return err == nil
	})
	openGate()
	if ev := rig.waitEvent(task.Job, jobwire.EventExited); ev.ExitCode != 0 {
		t.Fatalf("exit %d %q", ev.ExitCode, ev.Error)
	}
	got, err := jobs.TailLogs(rig.ctx, rig.js, task.Job, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) > 0 && strings.HasPrefix(got[len(got)-1].Text, "fray: ") {
		t.Fatalf("note %q for a pipe no other process held (%d lines)", got[len(got)-1].Text, len(got))
	}
	if len(got) != n {
		t.Fatalf("%d lines, want %d", len(got), n)
	}
	for i, l := range got {
		if want := strconv.Itoa(1e15 + i)[1:]; l.Text != want {
			t.Fatalf("line %d is %q, want %q", i, l.Text, want)
		}
	}
}

// A process that left the replica's group and writes a line now and then,
// each within the idle wait of the last, does not hold the attempt's end
// for as long as it takes to write the pipe's capacity: the waits for its
// output after the exit add up to the idle wait at most.
func TestAnEscapedProcessThatWritesSlowlyDoesNotHoldTheAttemptsEnd(t *testing.T) {
	const idle = 300 * time.Millisecond
	o := jobs.RunnerOptions{CPU: 2}
	jobs.SetOutputIdle(&o, idle)
	rig := startRunner(t, o)
	ticker := filepath.Join(t.TempDir(), "tick.sh")
	if err := os.WriteFile(ticker, []byte("while :; do echo tick; sleep 0.05; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	task := gpuTask("/t/escaped-slow", 0, "echo before; "+escaped(t, "sh "+ticker))
	rig.assign(task)
	// At 5 bytes in 50 ms, the pipe's 64 KiB take over ten minutes.
	var ev *jobwire.TaskEvent
	frayt.Eventually(t, 20*time.Second, "the attempt's end", func() bool { ev = rig.event(task.Job, jobwire.EventExited); return ev != nil })
	if ev.ExitCode != 0 {
		t.Fatalf("exit %d %q", ev.ExitCode, ev.Error)
	}
	rig.mu.Lock()
	got := slices.Clone(rig.lines[task.Job])
	rig.mu.Unlock()
	if len(got) < 2 || got[0] != "before" || !strings.HasPrefix(got[len(got)-1], "fray: ") {
		t.Fatalf("lines %q: want before, ticks, then the note", got)
	}
}
