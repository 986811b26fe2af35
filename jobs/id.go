package jobs

import (
	"fmt"
	"strings"
)

// Environment variables the runner sets in every job process.
const (
	EnvJobID       = "FRAY_JOB_ID"       // the job's hierarchical id, "/<ns>/<name>[/<child>...]"
	EnvTaskIndex   = "FRAY_TASK_INDEX"   // this replica's index, 0..FRAY_NUM_TASKS-1
	EnvNumTasks    = "FRAY_NUM_TASKS"    // the job's replica count
	EnvNamespace   = "FRAY_NAMESPACE"    // the job's namespace
	EnvClusterSpec = "FRAY_CLUSTER_SPEC" // the cluster the job was started from
	EnvAttempt     = "FRAY_JOB_ATTEMPT"  // the job's attempt (0 first, +1 per retry)
)

// Worker attributes that placement understands.
const (
	AttrRegion        = "region"
	AttrZone          = "zone"
	AttrPreemptible   = "preemptible"
	AttrTPUName       = "tpu-name"
	AttrTPUTopology   = "tpu-topology"
	AttrDeviceVariant = "device-variant"
)

// DefaultNamespace is the namespace of jobs submitted without one.
const DefaultNamespace = "default"

// ValidName reports why name is not a valid job or namespace name, or nil.
// Names are 1–128 characters of letters, digits, '-', '_' and '.', starting
// with a letter or digit; a space or '/' is always refused.
func ValidName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, kind)
	}
	if len(name) > 128 {
		return fmt.Errorf("%w: %s %q is longer than 128 characters", ErrInvalid, kind, name)
	}
	if strings.ContainsAny(name, " \t\n/") {
		return fmt.Errorf("%w: %s %q contains a space or '/'", ErrInvalid, kind, name)
	}
	for i, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || i > 0 && (c == '-' || c == '_' || c == '.')
		if !ok {
			return fmt.Errorf("%w: %s %q: character %q not allowed (use letters, digits, '-', '_', '.'; start with a letter or digit)", ErrInvalid, kind, name, c)
		}
	}
	return nil
}

// JobID builds the id of job name in namespace ns: "/ns/name".
func JobID(ns, name string) string { return "/" + ns + "/" + name }

// ChildID builds the id of a child job of parent: "parent/name".
func ChildID(parent, name string) string { return parent + "/" + name }

// ParseID checks id ("/ns/name[/child...]") and returns its namespace,
// its own name (the last element) and its parent's id ("" for a root job).
func ParseID(id string) (ns, name, parent string, err error) {
	if !strings.HasPrefix(id, "/") {
		return "", "", "", fmt.Errorf("%w: job id %q: want /<namespace>/<name>", ErrInvalid, id)
	}
	parts := strings.Split(id[1:], "/")
	if len(parts) < 2 {
		return "", "", "", fmt.Errorf("%w: job id %q: want /<namespace>/<name>", ErrInvalid, id)
	}
	for i, p := range parts {
		kind := "job name"
		if i == 0 {
			kind = "namespace"
		}
		if err := ValidName(kind, p); err != nil {
			return "", "", "", fmt.Errorf("job id %q: %w", id, err)
		}
	}
	ns, name = parts[0], parts[len(parts)-1]
	if len(parts) > 2 {
		parent = "/" + strings.Join(parts[:len(parts)-1], "/")
	}
	return ns, name, parent, nil
}

// ValidRef reports why s, a job as a user names it, is not one, or nil:
// an id ("/ns/name[/child...]", see ParseID) or a name in the client's
// namespace, possibly with its children ("name[/child...]").
func ValidRef(s string) error {
	if strings.HasPrefix(s, "/") {
		_, _, _, err := ParseID(s)
		return err
	}
	for _, p := range strings.Split(s, "/") {
		if err := ValidName("job name", p); err != nil {
			return fmt.Errorf("job %q: %w", s, err)
		}
	}
	return nil
}
