package dispatcher

import (
	"encoding/json"
	"maps"
	"strings"

	"github.com/frayhq/fray/jobs"
)

// JobEnv is the environment an external backend gives a job's processes:
// the request's env_vars, then fray's own variables, which win on a
// conflict (as on fray's workers): FRAY_JOB_ID and FRAY_NAMESPACE from
// jobID, then extra (the backend's per-job values such as FRAY_NUM_TASKS,
// and FRAY_CLUSTER_SPEC when it knows a spec the job can reach). Empty
// values in extra are left out. It returns nil when there is nothing to set.
func JobEnv(jobID string, req *jobs.JobRequest, extra map[string]string) map[string]string {
	env := maps.Clone(req.Environment.EnvVars)
	if env == nil {
		env = map[string]string{}
	}
	if jobID != "" {
		env[jobs.EnvJobID] = jobID
		ns, _, _ := strings.Cut(strings.TrimPrefix(jobID, "/"), "/")
		if ns != "" {
			env[jobs.EnvNamespace] = ns
		}
	}
	for k, v := range extra {
		if v != "" {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil
	}
	return env
}

// EncodeRequest is req as JSON, for a backend to keep with the job (Ray's
// job metadata, Iris's submit_argv), so that the job's record can be built
// from the backend alone (Finder).
func EncodeRequest(req *jobs.JobRequest) string {
	b, err := json.Marshal(req)
	if err != nil {
		return ""
	}
	return string(b)
}

// DecodeRequest reverses EncodeRequest; nil when s is not a request.
func DecodeRequest(s string) *jobs.JobRequest {
	if s == "" {
		return nil
	}
	var req jobs.JobRequest
	if json.Unmarshal([]byte(s), &req) != nil {
		return nil
	}
	return &req
}
