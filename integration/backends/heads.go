package backends

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// errHeadExited means a head's process ended before it served.
var errHeadExited = errors.New("head exited")

// tagEnv is set in every head's environment (and so inherited by everything
// it starts) to the head's private temp dir, so the harness can find and
// reap every process it caused.
const tagEnv = "FRAY_BACKENDS_TAG"

// Head is a running Ray head or Iris local cluster.
type Head struct {
	// Address is the Ray dashboard URL or the Iris controller URL.
	Address string
	// Dir is the head's private temp dir.
	Dir string
	// Log is the head's combined output.
	Log string

	cmd  *exec.Cmd
	stop func(*Head) error
	done chan struct{}
}

// Stop stops the head and reaps every process it started; an error names
// any process that survived.
func (h *Head) Stop() error {
	var errs []error
	if h.stop != nil {
		errs = append(errs, h.stop(h))
	}
	if h.cmd != nil && h.cmd.Process != nil {
		_ = h.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
			<-h.done
		}
	}
	if left := killTagged(h.Dir, 15*time.Second); len(left) > 0 {
		errs = append(errs, fmt.Errorf("processes left after stopping the head in %s:\n  %s", h.Dir, strings.Join(left, "\n  ")))
	}
	if len(errs) == 0 || errors.Join(errs...) == nil {
		_ = os.RemoveAll(h.Dir)
	}
	return errors.Join(errs...)
}

// start runs name args in its own process group with the tag in its
// environment, its output in h.Log.
func (h *Head) start(env []string, name string, args ...string) error {
	logf, err := os.Create(h.Log)
	if err != nil {
		return err
	}
	h.cmd = exec.Command(name, args...)
	h.cmd.Dir = h.Dir
	h.cmd.Env = append(append(os.Environ(), env...), tagEnv+"="+h.Dir)
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := h.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	h.done = make(chan struct{})
	go func() {
		_ = h.cmd.Wait()
		logf.Close()
		close(h.done)
	}()
	return nil
}

func (h *Head) logTail() string {
	b, _ := os.ReadFile(h.Log)
	return tail(string(b), 6000)
}

func newHead(prefix string) (*Head, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	return &Head{Dir: dir, Log: filepath.Join(dir, "head.log")}, nil
}

// StartRay starts a Ray head (2 CPUs, dashboard with the Jobs API on a free
// loopback port, every other port free too, its own temp dir) and waits until
// the Jobs API answers. The head runs `ray start --block` in its own process
// group: stopping it never touches another Ray on the machine (`ray stop`
// would kill every Ray process of the user).
func StartRay(ctx context.Context, v Venv) (*Head, error) {
	// The ports are picked free, then handed to Ray: another process (a
	// test's broker) can take one in between, and the head exits at once.
	// Such a start is tried again with new ports.
	var errs []error
	for range 3 {
		h, early, err := startRayOnce(ctx, v)
		if err == nil {
			return h, nil
		}
		errs = append(errs, err)
		if !early || ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// rayStartWait is how long a Ray head's dashboard may take to start.
const rayStartWait = 5 * time.Minute

// startRayOnce is one try of StartRay; early reports a head that exited
// before serving (a port taken, say), worth another try.
func startRayOnce(ctx context.Context, v Venv) (h *Head, early bool, err error) {
	h, err = newHead("fray-ray-")
	if err != nil {
		return nil, false, err
	}
	ports := map[string]int{}
	for _, p := range []string{"port", "dashboard-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
		"metrics-export-port", "node-manager-port", "object-manager-port", "runtime-env-agent-port", "ray-client-server-port"} {
		if ports[p], err = freePort(); err != nil {
			return nil, false, err
		}
	}
	args := []string{"start", "--head", "--block", "--num-cpus=2", "--include-dashboard=true",
		"--dashboard-host=127.0.0.1", "--disable-usage-stats", "--node-ip-address=127.0.0.1",
		"--temp-dir=" + filepath.Join(h.Dir, "ray"), "--object-store-memory=100000000"}
	for p, n := range ports {
		args = append(args, fmt.Sprintf("--%s=%d", p, n))
	}
	// Ray gives its dashboard (which serves the Jobs API) 60 s to come up
	// and exits after that; on a loaded 2-core machine it has taken longer.
	env := []string{"RAY_USAGE_STATS_ENABLED=0", "RAY_DISABLE_DOCKER_CPU_WARNING=1", "PYTHONUNBUFFERED=1",
		fmt.Sprintf("RAY_DASHBOARD_STARTUP_TIMEOUT_S=%d", int(rayStartWait.Seconds()))}
	if err := h.start(env, v.Bin("ray"), args...); err != nil {
		return nil, false, err
	}
	h.Address = fmt.Sprintf("http://127.0.0.1:%d", ports["dashboard-port"])
	if err := waitHTTP(ctx, h, h.Address+"/api/version", rayStartWait+time.Minute); err != nil {
		early = errors.Is(err, errHeadExited)
		log := h.logTail() // before Stop, which removes the head's dir
		_ = h.Stop()
		return nil, early, fmt.Errorf("ray head did not serve its Jobs API: %w\n%s", err, log)
	}
	return h, false, nil
}

// IrisConfig is the local cluster config: one CPU scale group of one
// 2-CPU worker, kept warm (buffer_slices) so jobs start at once.
const IrisConfig = `# fray test cluster: iris --config=<this> cluster start --local
name: fray-test
platform:
  local: {}
controller:
  local:
    port: 0
worker_provider: {}
scale_groups:
  cpu:
    num_vms: 1
    resources:
      cpu: 2
      ram: 4GB
      disk: 10GB
      device_type: cpu
      device_variant: cpu
      capacity_type: on-demand
    buffer_slices: 1
    max_slices: 1
    slice_template:
      num_vms: 1
      local: {}
`

var irisURL = regexp.MustCompile(`Controller started at (http://\S+)`)

// StartIris starts `iris --config=<IrisConfig> cluster start --local` (an
// in-process controller, log server and local workers that run a task's argv
// as a plain process) and reads the controller URL from its output. HOME and
// TMPDIR point into the head's temp dir, so Iris's credentials and state
// stay there.
func StartIris(ctx context.Context, v Venv) (*Head, error) {
	h, err := newHead("fray-iris-")
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(h.Dir, "cluster.yaml")
	for _, d := range []string{"home", "tmp"} {
		if err := os.Mkdir(filepath.Join(h.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(cfg, []byte(IrisConfig), 0o644); err != nil {
		return nil, err
	}
	env := []string{"HOME=" + filepath.Join(h.Dir, "home"), "TMPDIR=" + filepath.Join(h.Dir, "tmp"), "PYTHONUNBUFFERED=1"}
	if err := h.start(env, v.Bin("iris"), "--config="+cfg, "cluster", "start", "--local"); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(120 * time.Second)
	for h.Address == "" {
		if b, _ := os.ReadFile(h.Log); irisURL.Match(b) {
			h.Address = string(irisURL.FindSubmatch(b)[1])
			break
		}
		select {
		case <-h.done:
			return nil, fmt.Errorf("iris cluster start --local exited before printing its controller URL:\n%s", h.logTail())
		case <-ctx.Done():
			_ = h.Stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log := h.logTail() // before Stop, which removes the head's dir
			_ = h.Stop()
			return nil, fmt.Errorf("iris cluster start --local printed no controller URL within 2m:\n%s", log)
		}
	}
	if err := waitHTTP(ctx, h, h.Address+"/health", 60*time.Second); err != nil {
		log := h.logTail() // before Stop, which removes the head's dir
		_ = h.Stop()
		return nil, fmt.Errorf("iris controller at %s not healthy: %w\n%s", h.Address, err, log)
	}
	return h, nil
}

func waitHTTP(ctx context.Context, h *Head, url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-h.done:
			return errHeadExited
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %v", d, last)
}

// shared heads, started at most once per test binary.
var (
	mu     sync.Mutex
	heads  = map[string]*shared{}
	timing []string
)

type shared struct {
	once sync.Once
	head *Head
	err  error
}

func get(t testing.TB, kind string, spec VenvSpec, start func(context.Context, Venv) (*Head, error)) *Head {
	t.Helper()
	mu.Lock()
	s := heads[kind]
	if s == nil {
		s = &shared{}
		heads[kind] = s
	}
	mu.Unlock()
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		t0 := time.Now()
		v, err := Ensure(ctx, spec)
		if err != nil {
			s.err = err
			return
		}
		t1 := time.Now()
		s.head, s.err = start(ctx, v)
		mu.Lock()
		timing = append(timing, fmt.Sprintf("%s: venv ready in %s, head started in %s", kind, t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond)))
		mu.Unlock()
	})
	if s.err != nil {
		t.Fatalf("backends: %s is not available (this test never skips): %v", kind, s.err)
	}
	return s.head
}

// Ray returns the shared Ray head, installing and starting it on first use.
func Ray(t testing.TB) *Head { t.Helper(); return get(t, "ray", RayVenv, StartRay) }

// Iris returns the shared Iris local cluster, installing and starting it on
// first use.
func Iris(t testing.TB) *Head { t.Helper(); return get(t, "iris", IrisVenv, StartIris) }

// IrisPython is the venv-iris interpreter (for checking fray's protos against
// the installed marin-iris).
func IrisPython(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	v, err := Ensure(ctx, IrisVenv)
	if err != nil {
		t.Fatalf("backends: venv-iris is not available (this test never skips): %v", err)
	}
	return v.Bin("python")
}

// Shutdown stops every head started so far and reports survivors.
func Shutdown() error {
	mu.Lock()
	defer mu.Unlock()
	var errs []error
	for kind, s := range heads {
		if s.head != nil {
			if err := s.head.Stop(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", kind, err))
			}
		}
	}
	heads = map[string]*shared{}
	return errors.Join(errs...)
}

// Main runs the tests, then stops the heads. It returns a failing exit code
// when the tests fail or a head left a process behind. Timings go to stderr
// (CI budgeting).
func Main(m *testing.M) int {
	code := m.Run()
	for _, l := range timing {
		fmt.Fprintln(os.Stderr, "backends:", l)
	}
	if err := Shutdown(); err != nil {
		fmt.Fprintln(os.Stderr, "backends:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
