package jobs

import (
	"fmt"

	"github.com/frayhq/fray/internal/jobwire"
)

// Task states.
type TaskStatus string

const (
	TaskPending   TaskStatus = "PENDING"   // waiting for placement
	TaskAssigned  TaskStatus = "ASSIGNED"  // placed on a worker, not started yet
	TaskRunning   TaskStatus = "RUNNING"   // its process runs
	TaskSucceeded TaskStatus = "SUCCEEDED" // exited 0
	TaskFailed    TaskStatus = "FAILED"    // exited non-zero or could not start
	TaskStopped   TaskStatus = "STOPPED"   // killed: job stopped, gang restart, lost worker
)

// Done reports whether the task's current attempt has ended.
func (s TaskStatus) Done() bool {
	return s == TaskSucceeded || s == TaskFailed || s == TaskStopped
}

// Record is a job's state, stored in KV FRAY_JOB_STATE under "j.<token>".
// The dispatcher is its main writer; every write is a compare-and-set on the
// key's revision, and a terminal status is never changed.
type Record struct {
	V         int    `cbor:"v" json:"v"`
	ID        string `cbor:"id" json:"id"`
	Name      string `cbor:"name" json:"name"`
	Namespace string `cbor:"ns" json:"namespace"`
	// Parent is the id of the job this job was launched from, or "".
	Parent string `cbor:"parent,omitempty" json:"parent,omitempty"`
	// Run identifies this submission of the name: a name resubmitted after
	// its job finished gets a new Run, and stale events are ignored.
	Run     string     `cbor:"run" json:"run"`
	Request JobRequest `cbor:"request" json:"request"`
	Status  JobStatus  `cbor:"status" json:"status"`
	// Backend is "native" or the name of the external backend running it.
	Backend    string `cbor:"backend" json:"backend"`
	ExternalID string `cbor:"external_id,omitempty" json:"external_id,omitempty"`
	// Error says why a job FAILED or was STOPPED.
	Error string `cbor:"error,omitempty" json:"error,omitempty"`
	// PendingReason says why a PENDING job is not running yet.
	PendingReason string `cbor:"pending_reason,omitempty" json:"pending_reason,omitempty"`
	// Attempt counts gang (re)starts: 0 for the first run.
	Attempt     int         `cbor:"attempt" json:"attempt"`
	Failures    int         `cbor:"failures" json:"failures"`
	Preemptions int         `cbor:"preemptions" json:"preemptions"`
	Tasks       []TaskState `cbor:"tasks" json:"tasks"`
	SubmittedMS int64       `cbor:"submitted_ms" json:"submitted_ms"`
	StartedMS   int64       `cbor:"started_ms,omitempty" json:"started_ms,omitempty"`   // current attempt placed
	FinishedMS  int64       `cbor:"finished_ms,omitempty" json:"finished_ms,omitempty"` // terminal
	UpdatedMS   int64       `cbor:"updated_ms" json:"updated_ms"`
	// LogCursor is the external backend's log cursor already mirrored.
	LogCursor int64 `cbor:"log_cursor,omitempty" json:"log_cursor,omitempty"`
	// LogLines counts the lines mirrored from an external backend.
	LogLines int64 `cbor:"log_lines,omitempty" json:"log_lines,omitempty"`
	// UnreachableSinceMS is set while the dispatcher cannot reach the
	// external backend running the job (its status polls fail): since when.
	// It is cleared when a poll succeeds again or the job ends.
	UnreachableSinceMS int64 `cbor:"unreachable_since_ms,omitempty" json:"unreachable_since_ms,omitempty"`
	// UnreachableError is the last failed poll's error while
	// UnreachableSinceMS is set.
	UnreachableError string `cbor:"unreachable_error,omitempty" json:"unreachable_error,omitempty"`
	// StopRequestedMS is set on a live job on an external backend (Ray,
	// Iris) once a stop was asked for (by a client, a timeout, its parent
	// ending): since when. The job stays live until its backend reports it
	// finished; it then becomes STOPPED with StopReason as its error.
	StopRequestedMS int64 `cbor:"stop_requested_ms,omitempty" json:"stop_requested_ms,omitempty"`
	// StopReason says why the stop was asked for.
	StopReason string `cbor:"stop_reason,omitempty" json:"stop_reason,omitempty"`
}

// TaskState is one replica of a job.
type TaskState struct {
	Index  int        `cbor:"index" json:"index"`
	State  TaskStatus `cbor:"state" json:"state"`
	Worker string     `cbor:"worker,omitempty" json:"worker,omitempty"`
	// Attempts holds the task's most recent attempts (at most jobwire.MaxAttemptsKept).
	Attempts []TaskAttempt `cbor:"attempts,omitempty" json:"attempts,omitempty"`
}

// TaskAttempt is one run of a task.
type TaskAttempt struct {
	Attempt  int        `cbor:"attempt" json:"attempt"`
	Worker   string     `cbor:"worker" json:"worker"`
	State    TaskStatus `cbor:"state" json:"state"`
	ExitCode int        `cbor:"exit_code" json:"exit_code"`
	Error    string     `cbor:"error,omitempty" json:"error,omitempty"`
	StartMS  int64      `cbor:"start_ms,omitempty" json:"start_ms,omitempty"`
	EndMS    int64      `cbor:"end_ms,omitempty" json:"end_ms,omitempty"`
	// Exited is set once the runner's exited event for this attempt was
	// applied (also after the job ended): its process is gone and every
	// line it wrote is stored.
	Exited bool `cbor:"exited,omitempty" json:"exited,omitempty"`
	// Devices are the ids of the worker's devices the attempt held (what
	// its CUDA_VISIBLE_DEVICES or TPU_VISIBLE_CHIPS listed), from the
	// runner's started event; absent when it held none or has not started.
	Devices []string `cbor:"devices,omitempty" json:"devices,omitempty"`
}

// Current is the task's latest attempt, or nil.
func (t *TaskState) Current() *TaskAttempt {
	if len(t.Attempts) == 0 {
		return nil
	}
	return &t.Attempts[len(t.Attempts)-1]
}

// Running counts the tasks whose process runs.
func (r *Record) Running() int {
	n := 0
	for _, t := range r.Tasks {
		if t.State == TaskRunning {
			n++
		}
	}
	return n
}

// PendingSinceMS is when r's current wait to be placed began, in Unix ms:
// its submission while it was never placed (attempt 0); after a gang
// restart (a preemption or a retry), the latest end of the tasks' previous
// attempts, which the restart stamps. Meaningful while r is PENDING; the
// scheduling timeout is counted from it.
func (r *Record) PendingSinceMS() int64 {
	if r.Attempt == 0 {
		return r.SubmittedMS
	}
	var since int64
	for i := range r.Tasks {
		if a := r.Tasks[i].Current(); a != nil && a.Attempt < r.Attempt && a.EndMS > since {
			since = a.EndMS
		}
	}
	if since == 0 {
		since = max(r.StartedMS, r.SubmittedMS)
	}
	return since
}

// Handle-independent helpers.

// canTransition reports whether a job may go from status from to status to.
// PENDING → RUNNING and RUNNING → PENDING (a retry) are allowed, as is any
// live status to a terminal one; a terminal status is final.
func canTransition(from, to JobStatus) bool {
	if from == to {
		return true
	}
	if from.Terminal() {
		return false
	}
	switch to {
	case StatusPending, StatusRunning, StatusSucceeded, StatusFailed, StatusStopped:
		return true
	}
	return false
}

// checkTransition is canTransition as an error.
func checkTransition(id string, from, to JobStatus) error {
	if canTransition(from, to) {
		return nil
	}
	if from.Terminal() {
		return fmt.Errorf("%w: job %s is %s, cannot become %s", ErrTerminal, id, from, to)
	}
	return fmt.Errorf("%w: job %s: no transition %s → %s", ErrInvalid, id, from, to)
}

// NewTasks makes n fresh PENDING tasks.
func NewTasks(n int) []TaskState {
	ts := make([]TaskState, n)
	for i := range ts {
		ts[i] = TaskState{Index: i, State: TaskPending}
	}
	return ts
}

// Finish moves r to terminal status s with message msg, stamping the time.
// It fails with ErrTerminal when r already finished.
func (r *Record) Finish(s JobStatus, msg string) error {
	if err := checkTransition(r.ID, r.Status, s); err != nil {
		return err
	}
	r.Status = s
	r.Error = msg
	r.PendingReason = ""
	r.FinishedMS = jobwire.NowMS()
	for i := range r.Tasks {
		t := &r.Tasks[i]
		if !t.State.Done() {
			t.State = TaskStopped
			if a := t.Current(); a != nil && !a.State.Done() {
				a.State = TaskStopped
				a.EndMS = r.FinishedMS
			}
		}
	}
	return nil
}
