package jobs_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// pumpRig feeds a log writer through jobs.PumpLines from a pipe the test
// writes, on an in-process broker.
type pumpRig struct {
	t    *testing.T
	ctx  context.Context
	js   jetstream.JetStream
	job  string
	w    *io.PipeWriter
	done chan error
}

func startPump(t *testing.T, job string) *pumpRig {
	t.Helper()
	_, js := frayt.Connect(t, frayt.Server(t).ClientURL())
	pr, pw := io.Pipe()
	p := &pumpRig{t: t, ctx: frayt.Context(t, time.Minute), js: js, job: job, w: pw, done: make(chan error, 1)}
	lw := jobs.NewLogWriter(js, job, 0, 0)
	go func() { p.done <- jobs.PumpLines(p.ctx, pr, lw) }()
	t.Cleanup(func() { pw.Close(); <-p.done })
	return p
}

// write writes s in pieces of at most n bytes, each its own Write.
func (p *pumpRig) write(s string, n int) {
	p.t.Helper()
	for len(s) > 0 {
		k := min(n, len(s))
		if _, err := p.w.Write([]byte(s[:k])); err != nil {
			p.t.Fatal(err)
		}
		s = s[k:]
	}
}

// stored is the text of the job's stored lines.
func (p *pumpRig) stored() []string {
	p.t.Helper()
	ls, err := jobs.TailLogs(p.ctx, p.js, p.job, 0)
	if err != nil {
		p.t.Fatal(err)
	}
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Text
	}
	return out
}

// end closes the pipe (the process exited) and waits for the pump.
func (p *pumpRig) end() {
	p.t.Helper()
	p.w.Close()
	if err := <-p.done; err != nil {
		p.t.Fatal(err)
	}
	p.done <- nil // for the cleanup
}

// A line is published once its newline is read, whatever the writes that
// carried it and whenever the batch timer fires meanwhile; the text after
// the last newline is the last line once the output ends.
func TestALineWrittenInPiecesAcrossABatchFlushIsPublishedWhole(t *testing.T) {
	p := startPump(t, "/t/pieces")
	p.write("one\ntw", 100)
	// The batch timer sends "one" while "tw" waits for its newline.
	frayt.Eventually(t, 10*time.Second, `"one" published`, func() bool { return len(p.stored()) == 1 })
	if got := p.stored(); got[0] != "one" {
		t.Fatalf("first batch %q, want [one]", got)
	}
	p.write("o", 1)
	p.write("\nthr", 1)
	p.end()
	if got, want := p.stored(), []string{"one", "two", "thr"}; !slices.Equal(got, want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
}

// Lines longer than jobwire.MaxLineBytes are cut to at most that many
// bytes, at a character boundary, and marked; the rest up to the newline is
// dropped. A line longer than the pump's 64 KiB read buffer is one line all
// the same. CR LF ends a line like LF.
func TestLongLinesAreCutAtTheDocumentedLimitAndCRLFEndsALine(t *testing.T) {
	const limit = jobwire.MaxLineBytes
	const mark = " …[truncated]"
	p := startPump(t, "/t/long")
	in := []string{
		strings.Repeat("a", limit),
		strings.Repeat("b", 200<<10),
		strings.Repeat("c", limit-1) + "é" + "cc",
		"dos\r",
		"end",
	}
	p.write(strings.Join(in, "\n")+"\n", 1000)
	p.end()
	want := []string{
		in[0],
		strings.Repeat("b", limit) + mark,
		strings.Repeat("c", limit-1) + mark,
		"dos",
		"end",
	}
	got := p.stored()
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: %d bytes ending %q, want %d bytes ending %q", i, len(got[i]), got[i][max(0, len(got[i])-20):], len(want[i]), want[i][max(0, len(want[i])-20):])
		}
	}
}

// gatedLogs holds the runner's log publishes back until open is closed.
type gatedLogs struct {
	jetstream.JetStream
	open chan struct{}
}

func (g gatedLogs) Publish(ctx context.Context, subj string, data []byte, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if strings.HasPrefix(subj, broker.SubjectLogsPrefix) {
		<-g.open
	}
	return g.JetStream.Publish(ctx, subj, data, opts...)
}

// A replica that exits while its lines are still being published (a slow
// broker) loses none of them, and none is cut: the runner reads its output
// pipe to the end however long publishing takes.
func TestEveryLineOfAnExitedReplicaIsPublishedHoweverLongPublishingTakes(t *testing.T) {
	const idle = 50 * time.Millisecond
	o := jobs.RunnerOptions{CPU: 2}
	jobs.SetOutputIdle(&o, idle)
	open := make(chan struct{})
	var opened sync.Once
	openGate := func() { opened.Do(func() { close(open) }) }
	rig := startRunnerWith(t, o, func(js jetstream.JetStream) jetstream.JetStream { return gatedLogs{js, open} })
	t.Cleanup(openGate) // before the runner's cleanup, which waits for the pump
	exited := filepath.Join(t.TempDir(), "exited")
	// 60,000 bytes of lines: the pipe (64 KiB) holds them all, so the
	// replica exits whatever the pump does; the pump takes about 3,000
	// before it waits for its first batch to be published, so the rest is
	// still in the pipe when the replica exits unless one read of the pump's
	// took it all.
	const first, last = 10000, 19999
	task := gpuTask("/t/slowlogs", 0, "seq "+strconv.Itoa(first)+" "+strconv.Itoa(last)+"; touch "+exited)
	rig.assign(task)
	frayt.Eventually(t, 30*time.Second, "the replica ran its last command", func() bool {
		_, err := os.Stat(exited)
		return err == nil
	})
	// Publishing stays stuck for many times the idle wait after the exit:
	// that is the slow broker this test is about.
	time.Sleep(20 * idle)
	openGate()
	ev := rig.waitEvent(task.Job, jobwire.EventExited)
	if ev.ExitCode != 0 {
		t.Fatalf("exit %d %q", ev.ExitCode, ev.Error)
	}
	// The exit is reported once the last batch is stored.
	got, err := jobs.TailLogs(rig.ctx, rig.js, task.Job, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range got {
		if want := strconv.Itoa(first + i); l.Text != want || l.N != int64(i) {
			t.Fatalf("line %d is %d %q, want %q (%d lines in all)", i, l.N, l.Text, want, len(got))
		}
	}
	if len(got) != last-first+1 {
		t.Fatalf("%d lines, want %d", len(got), last-first+1)
	}
}

// escaped is a script line that starts cmd in a session of its own
// (outside the replica's group, which the runner's sweep kills) and waits
// until it is there; the test kills it at the end.
func escaped(t *testing.T, cmd string) string {
	pidFile := filepath.Join(t.TempDir(), "pid")
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return fmt.Sprintf(`setsid sh -c 'echo $$ > %s; exec %s' & while [ ! -s %s ]; do sleep 0.01; done`, pidFile, cmd, pidFile)
}

// A process that left the replica's group keeps the output pipe open after
// the replica exited: the runner ends the attempt all the same, once the
// pipe stays silent (sleep) or once it has read what the pipe could hold
// (a writer that never stops), and says so in the log. The escaped
// writer's unfinished line is not published.
func TestAnExitedReplicaEndsThoughAnEscapedProcessHoldsItsOutputOpen(t *testing.T) {
	o := jobs.RunnerOptions{CPU: 2}
	jobs.SetOutputIdle(&o, 200*time.Millisecond)
	rig := startRunner(t, o)
	silent := gpuTask("/t/escaped-silent", 0, "echo before; "+escaped(t, "sleep 600"))
	chatty := gpuTask("/t/escaped-chatty", 0, "echo before; "+escaped(t, "yes escaped"))
	rig.assign(silent, chatty)
	for _, task := range []jobwire.Assignment{silent, chatty} {
		if ev := rig.waitEvent(task.Job, jobwire.EventExited); ev.ExitCode != 0 {
			t.Fatalf("%s: exit %d %q", task.Job, ev.ExitCode, ev.Error)
		}
		var got []string
		frayt.Eventually(t, 10*time.Second, task.Job+"'s note on the held pipe", func() bool {
			rig.mu.Lock()
			defer rig.mu.Unlock()
			got = slices.Clone(rig.lines[task.Job])
			return len(got) > 0 && strings.HasPrefix(got[len(got)-1], "fray: ")
		})
		if got[0] != "before" {
			t.Fatalf("%s: first line %q", task.Job, got[0])
		}
		for _, l := range got[1 : len(got)-1] {
			if l != "escaped" {
				t.Fatalf("%s: line %q among the escaped writer's", task.Job, l)
			}
		}
	}
}

// lostAck stores the first log batch published through it, then fails the
// publish as a lost acknowledgement does, and ends the context of the
// flush (as the flush's retry deadline ends it when the broker stays out
// of reach).
type lostAck struct {
	jetstream.JetStream
	once   *sync.Once
	cancel context.CancelFunc
}

func (l lostAck) Publish(ctx context.Context, subj string, data []byte, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	lost := false
	l.once.Do(func() { lost = true })
	ack, err := l.JetStream.Publish(ctx, subj, data, opts...)
	if lost && err == nil {
		l.cancel()
		return nil, context.DeadlineExceeded
	}
	return ack, err
}

// A batch whose publish failed though the broker stored it is sent again as
// it was: lines added after the failure go in a batch of their own, never
// under the failed batch's message id, which the broker takes for a
// duplicate and drops whole.
func TestLinesAddedAfterAFailedFlushAreNotDroppedAsADuplicate(t *testing.T) {
	_, js := frayt.Connect(t, frayt.Server(t).ClientURL())
	ctx := frayt.Context(t, time.Minute)
	fctx, cancel := context.WithCancel(ctx)
	const job = "/t/lostack"
	lw := jobs.NewLogWriter(lostAck{js, &sync.Once{}, cancel}, job, 0, 0)
	lw.Dedup("run:0:0")
	if err := lw.Line(fctx, "one"); err != nil {
		t.Fatal(err)
	}
	if err := lw.Flush(fctx); err == nil {
		t.Fatal("the flush whose acknowledgement was lost succeeded")
	}
	for _, s := range []string{"two", "three"} {
		if err := lw.Line(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := lw.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := jobs.TailLogs(ctx, js, job, 0)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for i, l := range got {
		if l.N != int64(i) {
			t.Fatalf("line %q numbered %d, want %d", l.Text, l.N, i)
		}
		texts = append(texts, l.Text)
	}
	if want := []string{"one", "two", "three"}; !slices.Equal(texts, want) {
		t.Fatalf("stored lines %q, want %q", texts, want)
	}
	if lw.Next() != 3 {
		t.Fatalf("next line number %d, want 3", lw.Next())
	}
}

// A line of bytes that are not UTF-8 is at most the documented limit once
// its bad bytes are replaced: U+FFFD takes three bytes where the bad byte
// took one, so the replacement comes before the cut.
func TestALineOfBadBytesIsWithinTheLimitOnceMadeUTF8(t *testing.T) {
	const limit = jobwire.MaxLineBytes
	p := startPump(t, "/t/badbytes")
	p.write(strings.Repeat("\xffa", limit/2)+"\n", 1000)
	p.end()
	got := p.stored()
	if len(got) != 1 {
		t.Fatalf("%d lines, want 1", len(got))
	}
	text, ok := strings.CutSuffix(got[0], " …[truncated]")
	if !ok || len(text) > limit || !strings.HasPrefix(text, "\uFFFDa\uFFFDa") {
		t.Fatalf("line of %d bytes starting %q, marked %v; want at most %d bytes of U+FFFD a, marked", len(text), text[:min(len(text), 12)], ok, limit)
	}
}
