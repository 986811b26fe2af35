package langrt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/tasks"
	"github.com/frayhq/fray/worker/langrt"
)

var objectsMarshal = objects.Marshal

func decode[T any](t *testing.T, v any) T {
	t.Helper()
	raw, ok := v.(objects.RawMessage)
	if !ok {
		t.Fatalf("result is %T, want objects.RawMessage (pre-encoded CBOR)", v)
	}
	var out T
	if err := objects.Unmarshal(raw, &out); err != nil {
		t.Fatalf("decode result %x: %v", []byte(raw), err)
	}
	return out
}

func TestRuntimeRegistersThePythonFunctionsAndClassesOfItsImports(t *testing.T) {
	rt, reg, _ := start(t, 1)
	for _, fn := range []string{"rt.double", "rt.echo", "py.call"} {
		if _, ok := reg.Lookup(fn); !ok {
			t.Errorf("function %s not registered; have %v", fn, reg.Names())
		}
	}
	if cs := rt.Classes(); !slices.Contains(cs, "rt.Counter") || !slices.Contains(cs, "py.object") {
		t.Errorf("classes %v: want rt.Counter and py.object", cs)
	}
	if lang, ver := rt.Lang(); lang != "python" || !strings.HasPrefix(ver, "3.") {
		t.Errorf("lang %q version %q", lang, ver)
	}
}

func TestTaskResultIsTheCBORThePythonFunctionReturned(t *testing.T) {
	_, reg, _ := start(t, 2)
	ctx := frayt.Context(t, time.Minute)
	v, err := run(ctx, t, reg, "rt.double", 21)
	if err != nil {
		t.Fatal(err)
	}
	if got := decode[int](t, v); got != 42 {
		t.Fatalf("double(21) = %d", got)
	}
	// A value bigger than a pipe's buffer, both ways.
	big := strings.Repeat("fray", 1<<18)
	v, err = run(ctx, t, reg, "rt.echo", map[string]any{"s": big, "n": []any{1, "two", 3.5, nil, true}})
	if err != nil {
		t.Fatal(err)
	}
	got := decode[map[string]any](t, v)
	if got["s"] != big || len(got["n"].([]any)) != 5 {
		t.Fatalf("echo lost data: %d bytes of s, n %v", len(got["s"].(string)), got["n"])
	}
}

func TestPythonExceptionCarriesItsTypeTracebackAndPickledException(t *testing.T) {
	_, reg, _ := start(t, 1)
	_, err := run(frayt.Context(t, time.Minute), t, reg, "rt.fail", "no good")
	var re *tasks.RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("err %v (%T), want *tasks.RemoteError", err, err)
	}
	if re.Kind != tasks.KindHandler || re.Lang != "python" || re.Type != "builtins.ValueError" || re.Message != "no good" {
		t.Errorf("error %+v: want a handler error, python, builtins.ValueError, 'no good'", re)
	}
	if !strings.Contains(re.Traceback, "rtfixtures.py") || !strings.Contains(re.Traceback, "raise ValueError(msg)") || strings.Contains(re.Traceback, "_loop.py") {
		t.Errorf("traceback should show the fixture's frame and not the runtime's:\n%s", re.Traceback)
	}
	if len(re.Exc) == 0 {
		t.Error("no pickled exception")
	}
}

func TestUnpicklableResultIsAnErrorNamingItsType(t *testing.T) {
	_, reg, _ := start(t, 1)
	ctx := frayt.Context(t, time.Minute)
	_, err := run(ctx, t, reg, "rt.lock", nil)
	var re *tasks.RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Message, "_thread.lock") || re.Type != "frayhq.errors.PickleFailed" {
		t.Fatalf("err %v: want a PickleFailed naming _thread.lock", err)
	}
	// The process lives on.
	if v, err := run(ctx, t, reg, "rt.double", 2); err != nil || decode[int](t, v) != 4 {
		t.Fatalf("after the failure: %v, %v", v, err)
	}
}

func TestPickledValueReachesAGoReaderAsAnErrorNamingTheTag(t *testing.T) {
	_, reg, _ := start(t, 1)
	v, err := run(frayt.Context(t, time.Minute), t, reg, "rt.pickled", nil)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	err = objects.Unmarshal(v.(objects.RawMessage), &out)
	if !errors.Is(err, objects.ErrPythonValue) || !strings.Contains(err.Error(), "1718772089") {
		t.Fatalf("decode of a pickled set: %v; want ErrPythonValue naming tag 1718772089", err)
	}
	var typed map[string][]int
	if err := objects.Unmarshal(v.(objects.RawMessage), &typed); !errors.Is(err, objects.ErrPythonValue) {
		t.Fatalf("typed decode: %v; want ErrPythonValue", err)
	}
}

func TestPrintedLinesReachTheLogWithTheTaskID(t *testing.T) {
	_, reg, logs := start(t, 1)
	ctx := tasks.ContextWithTask(frayt.Context(t, time.Minute), tasks.TaskInfo{ID: "task-xyz", Attempt: 1})
	if _, err := run(ctx, t, reg, "rt.print", []string{"hello from python", "second line"}); err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 10*time.Second, "printed lines in the log", func() bool {
		out := logs.String()
		return strings.Contains(out, "task=task-xyz") && strings.Contains(out, `line="hello from python"`) &&
			strings.Contains(out, `line="second line"`) && strings.Contains(out, "stream=stderr")
	})
}

// A printed line ended by CR LF is framed as one ended by LF, as on the
// process's own fds: the CR is no part of the line.
func TestAPrintedLineEndedByCRLFLosesItsCR(t *testing.T) {
	_, reg, logs := start(t, 1)
	ctx := tasks.ContextWithTask(frayt.Context(t, time.Minute), tasks.TaskInfo{ID: "task-crlf", Attempt: 1})
	if _, err := run(ctx, t, reg, "rt.print", []string{"dos line\r", "a \r inside"}); err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 10*time.Second, "the lines in the log", func() bool {
		return strings.Contains(logs.String(), `line="a \r inside"`)
	})
	if out := logs.String(); !strings.Contains(out, `line="dos line"`) {
		t.Fatalf("the CR LF line is not logged without its CR:\n%s", out)
	}
}

// A line printed in pieces with a flush after each (a progress display)
// reaches the log as one line: a flush does not end a line.
func TestALinePrintedInFlushedPiecesReachesTheLogWhole(t *testing.T) {
	_, reg, logs := start(t, 1)
	ctx := tasks.ContextWithTask(frayt.Context(t, time.Minute), tasks.TaskInfo{ID: "task-pieces", Attempt: 1})
	if _, err := run(ctx, t, reg, "rt.print_pieces", []string{"load", "ing...", " done"}); err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 10*time.Second, "the line in the log", func() bool {
		return strings.Contains(logs.String(), `line="loading... done"`)
	})
	// Pieces sent as lines would have been logged before the whole line.
	if out := logs.String(); strings.Contains(out, `line=load`) || strings.Contains(out, `line="load"`) {
		t.Fatalf("a piece of the line was logged as a line:\n%s", out)
	}
}

// A line over the limit that the process writes on its own fd 1 is logged
// cut, and the process's output is read on: its next write succeeds.
func TestAnOverlongLineOnTheProcesssOwnOutputIsCutAndTheOutputReadOn(t *testing.T) {
	_, reg, logs := start(t, 1)
	ctx := tasks.ContextWithTask(frayt.Context(t, time.Minute), tasks.TaskInfo{ID: "task-long", Attempt: 1})
	if _, err := run(ctx, t, reg, "rt.write_fd_long", 2<<20); err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 10*time.Second, "the line after the long one in the log", func() bool {
		return strings.Contains(logs.String(), `line="after the long line"`)
	})
	if !strings.Contains(logs.String(), `xxx …[truncated]"`) {
		t.Fatal("the long line is not in the log, cut and marked")
	}
}

func TestAnUnendedPrintedLineReachesTheLogWithTheTaskID(t *testing.T) {
	_, reg, logs := start(t, 1)
	for i := range 3 {
		id := fmt.Sprintf("task-unended-%d", i)
		ctx := tasks.ContextWithTask(frayt.Context(t, time.Minute), tasks.TaskInfo{ID: id, Attempt: 1})
		if _, err := run(ctx, t, reg, "rt.print_unended", "no newline "+id); err != nil {
			t.Fatal(err)
		}
		for _, stream := range []string{"stdout", "stderr"} {
			frayt.Eventually(t, 10*time.Second, "the unended line on "+stream, func() bool {
				return regexp.MustCompile(`task=` + id + ` pid=\d+ stream=` + stream + ` line="no newline ` + id + `"`).MatchString(logs.String())
			})
		}
	}
}

// A line the code prints in pieces is held by the runtime until its newline
// up to 1 MiB only: past that it is sent cut and marked, the rest of it
// dropped, as a line over 1 MiB on the process's own fds is.
func TestAPrintedLineOverTheLimitIsCutAndMarked(t *testing.T) {
	_, reg, logs := start(t, 1)
	ctx := tasks.ContextWithTask(frayt.Context(t, time.Minute), tasks.TaskInfo{ID: "task-longprint", Attempt: 1})
	if _, err := run(ctx, t, reg, "rt.print_long_pieces", 3<<20); err != nil {
		t.Fatal(err)
	}
	frayt.Eventually(t, 10*time.Second, "the line after the long one in the log", func() bool {
		return strings.Contains(logs.String(), `line="after the long line"`)
	})
	m := regexp.MustCompile(`line="?(x{1000,})( …\[truncated\])?`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatal("the long line is not in the log")
	}
	if len(m[1]) > 1<<20 || m[2] == "" {
		t.Fatalf("the long line logged with %d bytes, marked %v; want at most %d, marked", len(m[1]), m[2] != "", 1<<20)
	}
}

// A line a thread of the code's own left unended (print(..., end="",
// flush=True) in a background thread) is no request's to end; it reaches
// the log when the process ends, as the text after the last newline does.
func TestAnUnendedLineOfABackgroundThreadReachesTheLogWhenTheProcessEnds(t *testing.T) {
	rt, reg, logs := start(t, 1)
	if _, err := run(frayt.Context(t, time.Minute), t, reg, "rt.thread_unended", "from a thread"); err != nil {
		t.Fatal(err)
	}
	rt.Close()
	frayt.Eventually(t, 10*time.Second, "the thread's line in the log", func() bool {
		return strings.Contains(logs.String(), `stream=stdout line="from a thread"`)
	})
}

func TestProcessKilledMidTaskFailsItAsRuntimeCrashedAndIsReplaced(t *testing.T) {
	_, reg, _ := start(t, 1)
	ctx := frayt.Context(t, 2*time.Minute)
	file := filepath.Join(t.TempDir(), "pid")
	errc := make(chan error, 1)
	go func() {
		_, err := run(ctx, t, reg, "rt.pid_then_sleep", map[string]any{"file": file})
		errc <- err
	}()
	var pid int
	frayt.Eventually(t, 30*time.Second, "the task wrote its pid", func() bool {
		b, err := os.ReadFile(file)
		pid, _ = strconv.Atoi(string(b))
		return err == nil && pid > 0
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-errc
	var re *tasks.RemoteError
	if !errors.As(err, &re) || re.Kind != tasks.KindRuntimeCrashed || !errors.Is(err, tasks.ErrRuntimeCrashed) || !strings.Contains(re.Message, "signal 9") {
		t.Fatalf("err %v: want runtime_crashed naming signal 9", err)
	}
	// The replacement serves the next attempt.
	v, err := run(ctx, t, reg, "rt.pid_then_sleep", map[string]any{"file": file})
	if err != nil {
		t.Fatal(err)
	}
	if got := decode[int](t, v); got == pid || got == 0 {
		t.Fatalf("second attempt ran in pid %d; the killed one was %d", got, pid)
	}
	// os._exit is a crash too.
	if _, err := run(ctx, t, reg, "rt.exit", 7); !errors.Is(err, tasks.ErrRuntimeCrashed) || !strings.Contains(err.Error(), "status 7") {
		t.Fatalf("os._exit(7): %v", err)
	}
}

func TestAttemptEndingBeforeTheCodeKillsItsProcess(t *testing.T) {
	_, reg, _ := start(t, 1)
	ctx := frayt.Context(t, time.Minute)
	tctx, cancel := context.WithTimeoutCause(ctx, 300*time.Millisecond, tasks.ErrTimeout)
	defer cancel()
	startAt := time.Now()
	_, err := run(tctx, t, reg, "rt.sleep", 30)
	if !errors.Is(err, tasks.ErrTimeout) {
		t.Fatalf("err %v, want the context's cause", err)
	}
	if d := time.Since(startAt); d > 10*time.Second {
		t.Fatalf("returned after %s", d)
	}
	// The only process was killed; its replacement serves.
	v, err := run(ctx, t, reg, "rt.double", 5)
	if err != nil || decode[int](t, v) != 10 {
		t.Fatalf("after the timeout: %v, %v", v, err)
	}
}

func TestImportErrorFailsStartWithThePythonTraceback(t *testing.T) {
	o, _ := options(t, 2, "badimport")
	_, err := langrt.Start(frayt.Context(t, time.Minute), o)
	var se *langrt.StartError
	if !errors.As(err, &se) || se.Err == nil {
		t.Fatalf("err %v (%T), want a StartError with the runtime's report", err, err)
	}
	msg := err.Error()
	for _, want := range []string{"import badimport", "builtins.RuntimeError", "fixture import failure", "badimport.py", "_helper()"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "importlib._bootstrap") {
		t.Errorf("traceback shows importlib's frames:\n%s", msg)
	}
}

func TestBadInterpreterFailsStart(t *testing.T) {
	o, _ := options(t, 1)
	o.Command = []string{filepath.Join(t.TempDir(), "no-such-python"), "-m", "frayhq.runtime"}
	if _, err := langrt.Start(frayt.Context(t, time.Minute), o); err == nil || !strings.Contains(err.Error(), "no-such-python") {
		t.Fatalf("err %v: want a start error naming the interpreter", err)
	}
	// An interpreter without frayhq exits before its hello.
	o, _ = options(t, 1)
	o.Env = []string{"PATH=" + os.Getenv("PATH")}
	_, err := langrt.Start(frayt.Context(t, time.Minute), o)
	if err == nil || !strings.Contains(err.Error(), "No module named") || !strings.Contains(err.Error(), "before saying hello") {
		t.Fatalf("err %v: want the exit and Python's complaint", err)
	}
}
