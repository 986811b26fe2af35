package backends

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Pinned Python packages. marin-iris's own floor for marin-finelog (>=0.2.10)
// resolves to a release its controller cannot import, so the finelog release
// that was current when this marin-iris was built is pinned beside it (and the
// [controller] extra brings the log server the local cluster runs).
var (
	RayRequirements  = []string{"ray[default]==2.60.0"}
	IrisRequirements = []string{
		"marin-iris[controller]==0.2.227.dev40316220070",
		"marin-finelog==0.2.71.dev40003900277",
		"marin-finelog-server==0.2.71.dev40003900277",
	}
)

// VenvSpec describes one virtualenv.
type VenvSpec struct {
	Name         string                 // directory under the build dir
	Python       func() (string, error) // the interpreter that creates it
	Requirements []string
	// RequirementsFile, relative to the module root, adds its non-empty,
	// non-comment lines to Requirements.
	RequirementsFile string
}

// RayVenv and IrisVenv are the two environments.
var (
	RayVenv  = VenvSpec{Name: "venv-ray", Python: python3, Requirements: RayRequirements}
	IrisVenv = VenvSpec{Name: "venv-iris", Python: python312, Requirements: IrisRequirements}
	// PyVenv is the frayhq test environment (Python 3.12): the pinned
	// runtime and test dependencies of python/requirements-test.txt.
	// frayhq itself is not installed: put python/src on PYTHONPATH.
	PyVenv = VenvSpec{Name: "venv-py", Python: python312, RequirementsFile: "python/requirements-test.txt"}
)

// ModuleRoot is the directory holding go.mod, above the working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("backends: no go.mod above the working directory")
		}
		dir = parent
	}
}

// requirements is spec's full list of requirements.
func (spec VenvSpec) requirements() ([]string, error) {
	reqs := slices.Clone(spec.Requirements)
	if spec.RequirementsFile == "" {
		return reqs, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(root, spec.RequirementsFile))
	if err != nil {
		return nil, fmt.Errorf("backends: requirements of %s: %w", spec.Name, err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			reqs = append(reqs, l)
		}
	}
	return reqs, nil
}

// Venv is an installed virtualenv.
type Venv struct{ Dir string }

// Bin is the path of an executable the venv installed.
func (v Venv) Bin(name string) string { return filepath.Join(v.Dir, "bin", name) }

const marker = ".fray-installed"

// BuildDir is where the venvs live: $FRAY_BUILD_DIR, else .build at the module
// root.
func BuildDir() (string, error) {
	if d := os.Getenv("FRAY_BUILD_DIR"); d != "" {
		return filepath.Abs(d)
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", fmt.Errorf("%w; set FRAY_BUILD_DIR", err)
	}
	return filepath.Join(root, ".build"), nil
}

// Ensure returns the venv for spec, creating it and installing the pinned
// requirements unless a previous install completed with the same pins (a
// marker file records them). Concurrent callers (test packages run in
// parallel) serialise on a lock file. A failure names the command and its
// output.
func Ensure(ctx context.Context, spec VenvSpec) (Venv, error) {
	build, err := BuildDir()
	if err != nil {
		return Venv{}, err
	}
	if err := os.MkdirAll(build, 0o755); err != nil {
		return Venv{}, err
	}
	v := Venv{Dir: filepath.Join(build, spec.Name)}
	reqs, err := spec.requirements()
	if err != nil {
		return v, err
	}
	want := strings.Join(reqs, "\n") + "\n"
	lock, err := os.OpenFile(filepath.Join(build, spec.Name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return v, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return v, fmt.Errorf("backends: lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	if got, err := os.ReadFile(filepath.Join(v.Dir, marker)); err == nil && string(got) == want {
		return v, nil
	}
	py, err := spec.Python()
	if err != nil {
		return v, err
	}
	start := time.Now()
	if err := os.RemoveAll(v.Dir); err != nil {
		return v, err
	}
	if err := run(ctx, "", py, "-m", "venv", v.Dir); err != nil {
		return v, fmt.Errorf("backends: create virtualenv %s with %s: %w", v.Dir, py, err)
	}
	args := append([]string{"-m", "pip", "install", "--quiet", "--disable-pip-version-check"}, reqs...)
	if err := run(ctx, "", v.Bin("python"), args...); err != nil {
		return v, fmt.Errorf("backends: cannot install %s (pip needs PyPI): %w", strings.Join(reqs, " "), err)
	}
	if err := os.WriteFile(filepath.Join(v.Dir, marker), []byte(want), 0o644); err != nil {
		return v, err
	}
	fmt.Fprintf(os.Stderr, "backends: installed %s into %s in %s\n", strings.Join(reqs, " "), v.Dir, time.Since(start).Round(time.Second))
	return v, nil
}

func run(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(out.String(), 4000))
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// python3 is the default python3 ($FRAY_PYTHON3 overrides).
func python3() (string, error) {
	if p := os.Getenv("FRAY_PYTHON3"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		return "", errors.New("backends: python3 not found on PATH (Ray needs it); set FRAY_PYTHON3")
	}
	return p, nil
}

// python312 finds a Python 3.12 ($FRAY_PYTHON312 overrides): the newest 3.12.x
// that pyenv provides, else python3.12 on PATH.
func python312() (string, error) {
	if p := os.Getenv("FRAY_PYTHON312"); p != "" {
		return p, nil
	}
	if out, err := exec.Command("pyenv", "versions", "--bare").Output(); err == nil {
		var vs []string
		for _, l := range strings.Fields(string(out)) {
			if strings.HasPrefix(l, "3.12.") {
				vs = append(vs, l)
			}
		}
		sort.Slice(vs, func(i, j int) bool { return patch(vs[i]) > patch(vs[j]) })
		for _, v := range vs {
			pre, err := exec.Command("pyenv", "prefix", v).Output()
			if err != nil {
				continue
			}
			p := filepath.Join(strings.TrimSpace(string(pre)), "bin", "python3.12")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	if p, err := exec.LookPath("python3.12"); err == nil {
		return p, nil
	}
	return "", errors.New("backends: no Python 3.12 found (marin-iris needs >= 3.12): looked in `pyenv versions` and for python3.12 on PATH; set FRAY_PYTHON312")
}

func patch(v string) int {
	n, _ := strconv.Atoi(v[strings.LastIndexByte(v, '.')+1:])
	return n
}
