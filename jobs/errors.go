package jobs

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalid wraps every refusal of a malformed request or argument.
	ErrInvalid = errors.New("jobs: invalid request")
	// ErrNotFound means no job has the given id.
	ErrNotFound = errors.New("jobs: job not found")
	// ErrTerminal means a change to a finished job's status was refused:
	// terminal states are final.
	ErrTerminal = errors.New("jobs: job already finished")
	// ErrRejected means the backend that would run the job refused it (for
	// example a Func entrypoint on Ray); the job is recorded FAILED.
	ErrRejected = errors.New("jobs: rejected by backend")
	// ErrNoDispatcher means no dispatcher answered within the deadline.
	ErrNoDispatcher = errors.New("jobs: no dispatcher answered")
)

// AlreadyExistsError is returned by Submit when a live job of the same name
// exists and the request set AdoptExisting to false. It carries that job's
// handle. errors.Is(err, ErrAlreadyExists) matches it.
type AlreadyExistsError struct {
	ID     string
	Handle *Handle
}

// ErrAlreadyExists matches *AlreadyExistsError with errors.Is.
var ErrAlreadyExists = errors.New("jobs: job already exists")

func (e *AlreadyExistsError) Error() string {
	return fmt.Sprintf("jobs: job %s already exists and is live (set AdoptExisting to adopt it)", e.ID)
}

// Is makes errors.Is(err, ErrAlreadyExists) true.
func (e *AlreadyExistsError) Is(target error) bool { return target == ErrAlreadyExists }

// FailedError is what Wait with RaiseOnFailure and WaitAll return for a job
// that ended FAILED or STOPPED. errors.Is(err, ErrJobFailed) matches it.
type FailedError struct {
	ID      string
	Status  JobStatus
	Message string // the job's error: exit code, lost worker, timeout, ...
}

// ErrJobFailed matches *FailedError with errors.Is.
var ErrJobFailed = errors.New("jobs: job did not succeed")

func (e *FailedError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("job %s ended %s", e.ID, e.Status)
	}
	return fmt.Sprintf("job %s ended %s: %s", e.ID, e.Status, e.Message)
}

// Is makes errors.Is(err, ErrJobFailed) true.
func (e *FailedError) Is(target error) bool { return target == ErrJobFailed }
