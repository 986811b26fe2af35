package jobwire

import (
	"strings"

	"github.com/frayhq/fray/broker"
)

// Subjects and keys of the jobs protocol. See docs/protocol/jobs.md.
const (
	// SubjectSubmit is the core-NATS request subject the dispatchers serve
	// (queue group QueueDispatchers): SubmitRequest in, SubmitReply out. It is
	// outside every stream on purpose.
	SubjectSubmit    = "fray.dispatcher.submit"
	QueueDispatchers = "fray-dispatchers"
	// SubjectEventsPrefix + WorkerToken(worker id) + "." + Token(job id):
	// TaskEvent from workers (FRAY_JOBS). See EventSubject.
	SubjectEventsPrefix = broker.SubjectJobsPrefix + "events."
	// SubjectControlPrefix + Token(job id): Control from clients (FRAY_JOBS).
	SubjectControlPrefix = broker.SubjectJobsPrefix + "ctl."
	// KeyJobPrefix + Token(job id): the job's Record in FRAY_JOB_STATE.
	KeyJobPrefix = "j."
	// KeyAllocPrefix + WorkerToken(worker id): the worker's Allocation.
	KeyAllocPrefix = "a."
	// DurableDispatcher is the dispatchers' shared durable consumer of
	// FRAY_JOBS events and control messages.
	DurableDispatcher = "fray-dispatcher"
)

// JobKey is the KV key of the job id's record.
func JobKey(id string) string { return KeyJobPrefix + Token(id) }

// AllocKey is the KV key of the worker's allocation record.
func AllocKey(worker string) string { return KeyAllocPrefix + WorkerToken(worker) }

// SubjectLayout is the version of the layout of the subjects workers
// publish on. Layout 2 puts the worker's token in them (EventSubject,
// WorkerLogSubject), so that a worker's permissions can name its own
// subjects and the dispatcher can tell who sent an event. Layout 1
// (fray.jobs.events.<job token>, fray.logs.<job token>.<task>) is still
// read: the dispatcher applies such events on the word of their Worker
// field, and only a user allowed the whole prefix (no `fray auth init`
// worker) can publish them.
const SubjectLayout = 2

// EventSubject is the subject worker publishes the task events of job id
// on: fray.jobs.events.<worker token>.<job token>.
func EventSubject(worker, id string) string {
	return SubjectEventsPrefix + WorkerToken(worker) + "." + Token(id)
}

// WorkerEvents is the subject filter of every event worker publishes.
func WorkerEvents(worker string) string { return SubjectEventsPrefix + WorkerToken(worker) + ".>" }

// ParseEventSubject splits an event subject into the worker token and the
// job token it names; worker is "" for a layout-1 subject (job token
// only). ok is false for anything else.
func ParseEventSubject(subj string) (worker, job string, ok bool) {
	rest, ok := strings.CutPrefix(subj, SubjectEventsPrefix)
	if !ok || rest == "" {
		return "", "", false
	}
	worker, job, two := strings.Cut(rest, ".")
	switch {
	case !two:
		return "", rest, true
	case worker == "" || job == "" || strings.Contains(job, "."):
		return "", "", false
	}
	return worker, job, true
}

// ControlSubject is the subject of the job's control messages.
func ControlSubject(id string) string { return SubjectControlPrefix + Token(id) }

// LogSubject is the subject of the log batches of one task of the job
// that no worker writes (the dispatcher's, for jobs of external backends):
// fray.logs.<job token>.<task>.
func LogSubject(id string, task int) string {
	return broker.SubjectLogsPrefix + Token(id) + "." + itoa(task)
}

// WorkerLogSubject is the subject worker publishes the log batches of one
// task of the job on: fray.logs.<job token>.<task>.<worker token>.
func WorkerLogSubject(id string, task int, worker string) string {
	return LogSubject(id, task) + "." + WorkerToken(worker)
}

// WorkerLogs is the subject filter of every log batch worker publishes.
func WorkerLogs(worker string) string { return broker.SubjectLogsPrefix + "*.*." + WorkerToken(worker) }

// LogFilter is the subject filter of all the job's log batches, with and
// without a worker token.
func LogFilter(id string) string { return broker.SubjectLogsPrefix + Token(id) + ".>" }

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	neg := i < 0
	if neg {
		i = -i
	}
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	if neg {
		n--
		b[n] = '-'
	}
	return string(b[n:])
}

// WireVersion is the version of SubmitRequest, SubmitReply, TaskEvent,
// Control, Allocation and LogBatch.
const WireVersion = 1

// Submit reply codes.
const (
	CodeOK       = ""
	CodeExists   = "exists"   // live job of that name, AdoptExisting false
	CodeInvalid  = "invalid"  // request failed validation
	CodeRejected = "rejected" // backend refused it; the job is recorded FAILED
	CodeInternal = "internal"
	// CodeUnavailable: the dispatcher is stopping; the client records the
	// job itself, as when no dispatcher answers.
	CodeUnavailable = "unavailable"
)

// Task event kinds.
const (
	EventStarted = "started"
	EventExited  = "exited"
)

// TaskEvent is a worker's report about one task attempt.
type TaskEvent struct {
	V       int    `cbor:"v"`
	Job     string `cbor:"job"`
	Run     string `cbor:"run"`
	Task    int    `cbor:"task"`
	Attempt int    `cbor:"attempt"`
	Worker  string `cbor:"worker"`
	Kind    string `cbor:"kind"`
	// ExitCode of an exited process; -1 when killed by a signal or never
	// started.
	ExitCode int    `cbor:"exit_code"`
	Error    string `cbor:"error,omitempty"`
	// Preempted marks an exit caused by the worker going away (draining),
	// counted against MaxRetriesPreemption, not MaxRetriesFailure.
	Preempted bool  `cbor:"preempted,omitempty"`
	TimeMS    int64 `cbor:"time_ms"`
	// Devices (started events) are the ids of the worker's devices the
	// attempt holds, as put in its CUDA_VISIBLE_DEVICES or
	// TPU_VISIBLE_CHIPS; absent when it holds none. Optional, so no
	// version change: older dispatchers ignore it.
	Devices []string `cbor:"devices,omitempty"`
	// DevicesBusy (exited events) marks an attempt that never started
	// because the worker's devices it was assigned stayed held by other
	// attempts (the dispatcher and the worker disagreed). Error names the
	// busy devices. The dispatcher reruns the gang as for a preemption,
	// without spending the failure budget.
	DevicesBusy bool `cbor:"devices_busy,omitempty"`
}

// Control operations.
const OpStop = "stop"

// Control is a client's request about a job, e.g. stop it.
type Control struct {
	V      int    `cbor:"v"`
	Job    string `cbor:"job"`
	Op     string `cbor:"op"`
	Reason string `cbor:"reason,omitempty"`
}

// Allocation is what one worker must run: the dispatcher's claims on its
// capacity, in KV FRAY_JOB_STATE under "a.<worker token>", written only with
// compare-and-set so two dispatchers cannot double-book it. The worker's
// runner watches its own key: an assignment that appears is started, one
// that disappears is killed.
type Allocation struct {
	V      int          `cbor:"v"`
	Worker string       `cbor:"worker"`
	Tasks  []Assignment `cbor:"tasks"`
}

// Assignment is one task attempt placed on a worker, with everything the
// runner needs to start it.
type Assignment struct {
	Job       string `cbor:"job"`
	Run       string `cbor:"run"`
	Namespace string `cbor:"ns"`
	Task      int    `cbor:"task"`
	NumTasks  int    `cbor:"num_tasks"`
	Attempt   int    `cbor:"attempt"`
	// Claimed capacity.
	CPU       float64 `cbor:"cpu"`
	RAMBytes  int64   `cbor:"ram_bytes,omitempty"`
	DiskBytes int64   `cbor:"disk_bytes,omitempty"`
	Devices   int     `cbor:"devices,omitempty"`
	// What to run.
	Argv []string          `cbor:"argv,omitempty"`
	Func string            `cbor:"func,omitempty"`
	Arg  []byte            `cbor:"arg,omitempty"`
	Env  map[string]string `cbor:"env,omitempty"`
	// EnvFromWorker names variables the worker fills in itself (secrets).
	EnvFromWorker []string `cbor:"env_from_worker,omitempty"`
	Workdir       string   `cbor:"workdir,omitempty"`
	Setup         []string `cbor:"setup,omitempty"`
	// CreatedMS is when the dispatcher placed it.
	CreatedMS int64 `cbor:"created_ms"`
}

// Same reports whether a and b are the same task attempt of the same run.
func (a *Assignment) Same(b *Assignment) bool {
	return a.Job == b.Job && a.Run == b.Run && a.Task == b.Task && a.Attempt == b.Attempt
}

// LogBatch is a batch of consecutive output lines (stdout and stderr
// interleaved as written) of one task attempt, on LogSubject(job, task).
type LogBatch struct {
	V       int      `cbor:"v"`
	Job     string   `cbor:"job"`
	Task    int      `cbor:"task"`
	Attempt int      `cbor:"attempt"`
	First   int64    `cbor:"first"` // line number of Lines[0] within the attempt, from 0
	Lines   []string `cbor:"lines"`
}
