package ray

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/jobs"
)

// JobInfo is Ray's view of one job (GET /api/jobs/{id}); fields fray reads.
type JobInfo struct {
	Type                string             `json:"type"`
	SubmissionID        string             `json:"submission_id"`
	JobID               string             `json:"job_id"`
	Status              string             `json:"status"`
	Message             string             `json:"message"`
	ErrorType           string             `json:"error_type"`
	Entrypoint          string             `json:"entrypoint"`
	Metadata            map[string]string  `json:"metadata"`
	EntrypointNumCPUs   *float64           `json:"entrypoint_num_cpus"`
	EntrypointNumGPUs   *float64           `json:"entrypoint_num_gpus"`
	EntrypointMemory    *int64             `json:"entrypoint_memory"`
	EntrypointResources map[string]float64 `json:"entrypoint_resources"`
	DriverExitCode      *int               `json:"driver_exit_code"`
	RuntimeEnv          map[string]any     `json:"runtime_env"`
	// DriverNodeID is set once the job's supervisor starts its entrypoint
	// (Ray sets it with RUNNING and never clears it).
	DriverNodeID string `json:"driver_node_id"`
	// StartTime is when Ray accepted the submission and EndTime when the
	// job became terminal (Unix ms); Ray records no time for the start of
	// the entrypoint itself.
	StartTime int64 `json:"start_time"`
	EndTime   int64 `json:"end_time"`
}

// Submit posts the job to Ray with a submission id derived from jobID.
// Submitting the same jobID again returns the same id without starting a
// second job (Ray refuses a duplicate submission id; fray then confirms the
// job exists).
func (b *Backend) Submit(ctx context.Context, jobID, run string, req *jobs.JobRequest) (string, error) {
	body, err := b.translate(jobID, run, req)
	if err != nil {
		return "", err
	}
	var out struct {
		SubmissionID string `json:"submission_id"`
	}
	err = b.do(ctx, http.MethodPost, "/api/jobs/", body, &out)
	var he *HTTPError
	if errors.As(err, &he) && he.Status == http.StatusBadRequest && strings.Contains(he.Message, "already exists") {
		if _, gerr := b.Info(ctx, body.SubmissionID); gerr == nil {
			return body.SubmissionID, nil
		}
	}
	if err != nil {
		return "", err
	}
	if out.SubmissionID == "" {
		out.SubmissionID = body.SubmissionID
	}
	return out.SubmissionID, nil
}

// Info returns Ray's job info for a submission id.
func (b *Backend) Info(ctx context.Context, externalID string) (*JobInfo, error) {
	var info JobInfo
	if err := b.do(ctx, http.MethodGet, "/api/jobs/"+url.PathEscape(externalID), nil, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// Status maps Ray's job status onto fray's; Message is Ray's message.
func (b *Backend) Status(ctx context.Context, externalID string) (dispatcher.RemoteStatus, error) {
	info, err := b.Info(ctx, externalID)
	if err != nil {
		return dispatcher.RemoteStatus{}, err
	}
	return remoteStatus(info)
}

func remoteStatus(info *JobInfo) (dispatcher.RemoteStatus, error) {
	st := dispatcher.RemoteStatus{Message: info.Message}
	if info.DriverNodeID != "" { // it ran
		st.StartedMS = info.StartTime
		if info.Status != "RUNNING" {
			st.FinishedMS = info.EndTime
		}
	}
	switch info.Status {
	case "PENDING":
		st.State = jobs.StatusPending
	case "RUNNING":
		st.State = jobs.StatusRunning
	case "SUCCEEDED":
		st.State = jobs.StatusSucceeded
	case "FAILED":
		st.State = jobs.StatusFailed
		// Ray appends up to 20,000 characters of the driver log to the
		// message; the log is mirrored already, so the error keeps the cause.
		st.Message, _, _ = strings.Cut(st.Message, ", last available logs")
		st.Message = strings.TrimSpace(st.Message)
		if st.Message == "" {
			st.Message = "Ray reports the job failed"
		}
	case "STOPPED":
		st.State = jobs.StatusStopped
	default:
		return st, fmt.Errorf("ray: job %s has unknown status %q", info.SubmissionID, info.Status)
	}
	return st, nil
}

// Logs returns the complete log lines after byte offset cursor of the job's
// driver log (Ray serves the whole log on every GET), and the offset after
// them. A trailing line without its newline is held back until it is
// finished or the job is over, so no poll ever returns a line twice or cut.
func (b *Backend) Logs(ctx context.Context, externalID string, cursor int64) ([]string, int64, error) {
	text, err := b.logsAfter(ctx, externalID, cursor)
	if err != nil {
		return nil, cursor, err
	}
	end := strings.LastIndexByte(text, '\n') + 1
	if end < len(text) {
		// A partial last line: take it only once the job is over, from a
		// log read after Ray said so (the job may have finished the line
		// between the read above and the status).
		if st, err := b.Status(ctx, externalID); err == nil && st.State.Terminal() {
			if text, err = b.logsAfter(ctx, externalID, cursor); err != nil {
				return nil, cursor, err
			}
			end = len(text)
		}
	}
	if end == 0 {
		return nil, cursor, nil
	}
	lines := strings.Split(strings.TrimSuffix(text[:end], "\n"), "\n")
	return lines, cursor + int64(end), nil
}

// logsAfter is the job's driver log after byte offset cursor ("" when the
// log is not that long).
func (b *Backend) logsAfter(ctx context.Context, externalID string, cursor int64) (string, error) {
	var out struct {
		Logs string `json:"logs"`
	}
	if err := b.do(ctx, http.MethodGet, "/api/jobs/"+url.PathEscape(externalID)+"/logs", nil, &out); err != nil {
		return "", err
	}
	if cursor < 0 || cursor > int64(len(out.Logs)) {
		return "", nil
	}
	return out.Logs[cursor:], nil
}

// Stop asks Ray to stop the job. Stopping a finished job is not an error.
func (b *Backend) Stop(ctx context.Context, externalID string) error {
	var out struct {
		Stopped bool `json:"stopped"`
	}
	return b.do(ctx, http.MethodPost, "/api/jobs/"+url.PathEscape(externalID)+"/stop", nil, &out)
}

// List returns the submission jobs Ray knows (only those of Options.Namespace
// when it is set); fray's ids, runs and requests come from the job metadata.
func (b *Backend) List(ctx context.Context) ([]dispatcher.RemoteJob, error) {
	var infos []JobInfo
	if err := b.do(ctx, http.MethodGet, "/api/jobs/", nil, &infos); err != nil {
		return nil, err
	}
	out := make([]dispatcher.RemoteJob, 0, len(infos))
	for i := range infos {
		info := &infos[i]
		if info.SubmissionID == "" { // a driver started outside the Jobs API
			continue
		}
		if b.ns != "" && info.Metadata[MetaNamespace] != b.ns {
			continue
		}
		st, err := remoteStatus(info)
		if err != nil {
			continue
		}
		out = append(out, dispatcher.RemoteJob{
			ExternalID:  info.SubmissionID,
			JobID:       info.Metadata[MetaJobID],
			Name:        info.Metadata[MetaJobName],
			Status:      st,
			Run:         info.Metadata[MetaRun],
			Request:     dispatcher.DecodeRequest(info.Metadata[MetaRequest]),
			SubmittedMS: info.StartTime,
		})
	}
	return out, nil
}

// Find returns Ray's newest job for fray job jobID (dispatcher.Finder): the
// submission ids hash the run in, so it is found by its metadata.
func (b *Backend) Find(ctx context.Context, jobID string) (*dispatcher.RemoteJob, error) {
	list, err := b.List(ctx)
	if err != nil {
		return nil, err
	}
	var best *dispatcher.RemoteJob
	for i := range list {
		if j := &list[i]; j.JobID == jobID && (best == nil || j.SubmittedMS > best.SubmittedMS) {
			best = j
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: ray has no job for fray job %s", dispatcher.ErrJobNotFound, jobID)
	}
	return best, nil
}

// Kind is "ray" (dispatcher.Located).
func (b *Backend) Kind() string { return "ray" }

// Address is the dashboard URL (dispatcher.Located).
func (b *Backend) Address() string { return b.base }
