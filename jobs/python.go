package jobs

import (
	"os"
	"strings"
)

// isFrayhqJob reports whether argv is a callable Python job as frayhq
// writes it when it cannot know the workers' interpreter:
// python3 -m frayhq.job ….
func isFrayhqJob(argv []string) bool {
	return len(argv) >= 3 && argv[0] == "python3" && argv[1] == "-m" && argv[2] == "frayhq.job"
}

// withPythonPath returns env with dirs put first on its PYTHONPATH.
func withPythonPath(env []string, dirs []string) []string {
	if len(dirs) == 0 {
		return env
	}
	const key = "PYTHONPATH="
	path := strings.Join(dirs, string(os.PathListSeparator))
	out := make([]string, 0, len(env)+1)
	found := false
	for _, kv := range env {
		if rest, ok := strings.CutPrefix(kv, key); ok {
			found = true
			if rest != "" {
				kv = key + path + string(os.PathListSeparator) + rest
			} else {
				kv = key + path
			}
		}
		out = append(out, kv)
	}
	if !found {
		out = append(out, key+path)
	}
	return out
}
