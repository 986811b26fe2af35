package main

import (
	"os"
	"path/filepath"
	"testing"
)

// A job runs in its own workdir: an interpreter given by a relative path
// must be made absolute before jobs are rewritten to run with it.
func TestPythonFlagsMakeARelativeInterpreterAbsolute(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "venv", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	py := filepath.Join(dir, "venv", "bin", "python")
	if err := os.WriteFile(py, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	pf := pythonFlags{interpreter: "./venv/bin/python"}
	if err := pf.check(); err != nil {
		t.Fatal(err)
	}
	if pf.interpreter != py {
		t.Fatalf("interpreter = %q, want %q", pf.interpreter, py)
	}
}
