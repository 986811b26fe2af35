package iris

import (
	"fmt"
	"net/url"
	"strings"
)

// wireName is the Iris job name of fray job jobID: "/<user>/<c1>.<c2>…",
// fray's path components flattened into one Iris component (an Iris child job
// needs a live Iris parent, which fray jobs do not have). Each component is
// escaped ('%', '.', ':' as %25, %2E, %3A) so the mapping reverses exactly.
func (b *Backend) wireName(jobID string) (string, error) {
	parts := strings.Split(strings.Trim(jobID, "/"), "/")
	for i, p := range parts {
		if strings.TrimSpace(p) == "" {
			return "", fmt.Errorf("iris: job id %q has an empty component", jobID)
		}
		parts[i] = escape(p)
	}
	return "/" + b.user + "/" + strings.Join(parts, "."), nil
}

// frayID reverses wireName; ok is false for a job fray did not name.
func (b *Backend) frayID(wire string) (string, bool) {
	rest, ok := strings.CutPrefix(wire, "/"+b.user+"/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return "", false
	}
	parts := strings.Split(rest, ".")
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil || u == "" {
			return "", false
		}
		parts[i] = u
	}
	return "/" + strings.Join(parts, "/"), true
}

func escape(s string) string {
	return strings.NewReplacer("%", "%25", ".", "%2E", ":", "%3A").Replace(s)
}
