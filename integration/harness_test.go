package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/integration/backends"
)

// bin holds the built binaries: bin["fray"], bin["fray-broker"], bin["fray-worker"].
var bin = map[string]string{}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fray-integration-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, name := range []string{"fray", "fray-broker", "fray-worker"} {
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", out, "../cmd/"+name)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "integration: cannot build %s: %v\n", name, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
		bin[name] = out
	}
	code := backends.Main(m) // m.Run, then stop any Ray or Iris heads the tests started
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running binary whose output is kept for assertions and
// printed on failure.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd

	mu     sync.Mutex
	out    bytes.Buffer // stdout and stderr, interleaved
	lines  chan string  // stdout lines, for waiting on readiness
	done   chan struct{}
	err    error
	killed bool
}

// start runs binary name with args and env additions; the process (and its
// process group) is killed when the test ends.
func start(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin[name], args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &proc{t: t, name: name, cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.out.Write(b)
	})
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.out.WriteString(line + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- line:
			default:
			}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("--- output of %s %s:\n%s", name, strings.Join(args, " "), p.Output())
		}
	})
	return p
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// Output is everything the process printed so far.
func (p *proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitLine waits for a stdout line containing substr and returns it.
func (p *proc) waitLine(substr string, d time.Duration) string {
	p.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case l := <-p.lines:
			if strings.Contains(l, substr) {
				return l
			}
		case <-p.done:
			p.t.Fatalf("%s exited (%v) before printing %q:\n%s", p.name, p.err, substr, p.Output())
		case <-deadline:
			p.t.Fatalf("%s did not print %q within %s:\n%s", p.name, substr, d, p.Output())
		}
	}
}

// Kill sends SIGKILL to the process group and reaps the process.
func (p *proc) Kill() {
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Term sends SIGTERM and waits up to d for a clean exit.
func (p *proc) Term(d time.Duration) error {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		p.t.Fatalf("%s still running %s after SIGTERM:\n%s", p.name, d, p.Output())
		return nil
	}
}

// Exited reports whether the process has exited.
func (p *proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// brokerProc is a running fray-broker.
type brokerProc struct {
	*proc
	URL   string
	Store string
	Port  int
}

// startBroker runs fray-broker on store (a new temp dir if "") and port (one
// nats-server picks itself if 0: a port reserved here and released would be
// free for anyone to take before fray-broker binds it) and waits until it is
// ready. Port is the port it listens on, to start it again on.
func startBroker(t testing.TB, store string, port int, args ...string) *brokerProc {
	t.Helper()
	return startBrokerEnv(t, nil, store, port, args...)
}

// startBrokerEnv is startBroker with env added to the broker's
// environment (credentials).
func startBrokerEnv(t testing.TB, env []string, store string, port int, args ...string) *brokerProc {
	t.Helper()
	if store == "" {
		store = t.TempDir()
	}
	if port == 0 {
		port = -1
	}
	p := start(t, "fray-broker", env, append([]string{"--store", store, "--port", fmt.Sprint(port), "--log-level", "warn"}, args...)...)
	line := p.waitLine("fray-broker ready", 60*time.Second)
	url := strings.TrimPrefix(strings.Fields(line)[2], "url=")
	return &brokerProc{proc: p, URL: url, Store: store, Port: urlPort(t, url)}
}

// urlPort is the port of a nats:// URL a binary printed.
func urlPort(t testing.TB, url string) int {
	t.Helper()
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatalf("printed URL %q: %v", url, err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil || port <= 0 {
		t.Fatalf("printed URL %q names no port", url)
	}
	return port
}

// startWorker runs fray-worker against url and waits until it is
// registered in the cluster.
func startWorker(t testing.TB, c *fray.Client, id string, args ...string) *proc {
	t.Helper()
	p := start(t, "fray-worker", nil, append([]string{"--nats", c.URL(), "--id", id, "--log-level", "warn"}, args...)...)
	waitFor(t, 30*time.Second, "worker "+id+" registered", func() bool {
		for _, w := range c.Workers() {
			if w.ID == id {
				return true
			}
		}
		return false
	})
	return p
}

// client connects to url, closed when the test ends.
func client(t testing.TB, url string) *fray.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := fray.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// runFray runs the fray CLI to completion and returns its stdout, stderr
// and exit code.
func runFray(t testing.TB, env []string, timeout time.Duration, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin["fray"], args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("fray %s: still running after %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), timeout, o.String(), e.String())
	}
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("fray %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

// waitFor polls cond every 20 ms until it holds, failing the test after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not true within %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
