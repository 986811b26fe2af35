package dispatcher_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/jobs"
)

// A callable Python job as frayhq writes it without knowing the workers'
// interpreter (python3 -m frayhq.job …) runs with the worker's --python
// interpreter and --python-path, as its Python tasks do; any other argv
// naming python3 runs as it is.
func TestACallablePythonJobRunsWithTheWorkersInterpreter(t *testing.T) {
	dir := t.TempDir()
	interp := filepath.Join(dir, "venv-python")
	script := "#!/bin/sh\necho \"interpreter=$0 args=$* path=$PYTHONPATH\"\n"
	if err := os.WriteFile(interp, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	mods := filepath.Join(dir, "mods")
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 2, nil, jobs.RunnerOptions{Python: interp, PythonPath: []string{mods}})

	req := jobs.JobRequest{Name: "callable", Entrypoint: jobs.Command("python3", "-m", "frayhq.job", "--call", "b/d/1")}
	req.Environment.EnvVars = map[string]string{"PYTHONPATH": "/from/request"}
	h := c.submit(req)
	if r := c.wait(h); r.Status != jobs.StatusSucceeded {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	lines, err := h.Logs(c.ctx, 0)
	want := "interpreter=" + interp + " args=-m frayhq.job --call b/d/1 path=" + mods + ":/from/request"
	if err != nil || len(lines) != 1 || lines[0].Text != want {
		t.Fatalf("logs %+v (%v); want %q", lines, err, want)
	}

	other := c.submit(jobs.JobRequest{Name: "plain", Entrypoint: jobs.Command("python3", "-c", "print('as it is')")})
	if r := c.wait(other); r.Status != jobs.StatusSucceeded {
		t.Fatalf("plain python3 job: status %s: %s", r.Status, r.Error)
	}
	lines, err = other.Logs(c.ctx, 0)
	if err != nil || len(lines) != 1 || strings.TrimSpace(lines[0].Text) != "as it is" {
		t.Fatalf("plain python3 job logs %+v (%v); want it run by python3 itself", lines, err)
	}
}
