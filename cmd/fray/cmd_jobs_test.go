package main

import (
	"testing"

	"github.com/frayhq/fray/jobs"
)

func TestJobStatusShowsTheCommandWithoutHTMLEscapes(t *testing.T) {
	ep := jobs.Command("sh", "-c", `echo "a" > out 2>&1 && cat <in`)
	want := `["sh","-c","echo \"a\" > out 2>&1 && cat <in"]`
	if got := entrypointText(&ep); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	fn := jobs.Func("train", nil)
	if got := entrypointText(&fn); got != "func train" {
		t.Fatalf("func entrypoint: %q", got)
	}
}
