package dispatcher

import (
	"context"
	"errors"

	"github.com/frayhq/fray/jobs"
)

// ErrUnsupported wraps every refusal of a request a backend cannot honour
// (for example a Func entrypoint on Ray). Refusals happen at submit, never
// silently later.
var ErrUnsupported = errors.New("dispatcher: unsupported by backend")

// Backend is an external system that runs jobs: Ray or Iris. The dispatcher
// owns the fray side (job records, state machine, logs stream); a Backend
// only translates.
type Backend interface {
	// Name is the backend's configured name; ResourceConfig.TargetCluster
	// selects a backend by it.
	Name() string
	// Validate refuses, wrapping ErrUnsupported with a clear reason,
	// anything in req the backend cannot honour.
	Validate(req *jobs.JobRequest) error
	// Submit starts the job and returns the backend's id for it. jobID is
	// fray's hierarchical id ("/ns/name"); run is the submission's run
	// (jobs.Record.Run). Each new run of a job name reuses its jobID:
	// submitting the same jobID and run twice must not start it twice (the
	// second call adopts the first), and a job left by an earlier run is
	// never adopted.
	Submit(ctx context.Context, jobID, run string, req *jobs.JobRequest) (externalID string, err error)
	// Status reports the job's state mapped onto fray's states.
	Status(ctx context.Context, externalID string) (RemoteStatus, error)
	// Logs returns the log lines after cursor (0 = from the start) and the
	// cursor to pass next time, so repeated polls never duplicate a line.
	Logs(ctx context.Context, externalID string, cursor int64) (lines []string, next int64, err error)
	// Stop asks the backend to stop the job. Stopping a finished job is not
	// an error.
	Stop(ctx context.Context, externalID string) error
	// List returns the jobs the backend knows.
	List(ctx context.Context) ([]RemoteJob, error)
}

// RemoteStatus is a backend's view of one job.
type RemoteStatus struct {
	State   jobs.JobStatus
	Message string // the backend's message; the error for a failed job
	// StartedMS and FinishedMS are when the backend says the job started
	// running and finished (Unix ms, the backend's clock); 0 when it does
	// not say or the job never ran.
	StartedMS, FinishedMS int64
}

// RemoteJob is one entry of Backend.List, or what Finder.Find found.
type RemoteJob struct {
	ExternalID string
	JobID      string // fray's id when the job came from fray, else ""
	Name       string
	Status     RemoteStatus
	// Run is the fray run the job was submitted for ("" when the backend
	// does not say: a job fray did not submit, or an older fray's).
	Run string
	// Request is the fray request the job was submitted with, when the
	// backend kept it; else nil (the record is built from what it has).
	Request *jobs.JobRequest
	// SubmittedMS is when the backend accepted the job (Unix ms, the
	// backend's clock); 0 when it does not say.
	SubmittedMS int64
}

// Finder is implemented by a backend that can find fray's jobs by fray's
// job id, so that any process can see, follow and stop them without the
// broker that submitted them: the backend is the record.
type Finder interface {
	// Find returns the backend's newest job for fray job jobID (with Run,
	// Request and SubmittedMS when it has them), or an error matching
	// ErrJobNotFound.
	Find(ctx context.Context, jobID string) (*RemoteJob, error)
}

// LogFinder is implemented by a backend whose log cursors are shared by
// every run of a job name (Iris): a job found on it, not submitted by this
// dispatcher, reads its logs from LogStartOf.
type LogFinder interface {
	// LogStartOf returns the log cursor before the first line of rj's run.
	LogStartOf(ctx context.Context, rj *RemoteJob) (int64, error)
}

// Located is implemented by a backend that can say what it is and where:
// its kind ("ray", "iris") and its head's URL.
type Located interface {
	Kind() string
	Address() string
}

// ErrLiveElsewhere is matched by a backend's Submit refusing to replace a
// live job of the same name that belongs to another run: a live job is
// adopted, never killed and replaced.
var ErrLiveElsewhere = errors.New("dispatcher: a live job of that name on the backend belongs to another submission")
