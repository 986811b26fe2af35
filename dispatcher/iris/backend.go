package iris

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/dispatcher/iris/internal/finelog/loggingpb"
	"github.com/frayhq/fray/dispatcher/iris/internal/finelog/loggingpb/loggingpbconnect"
	"github.com/frayhq/fray/dispatcher/iris/internal/iris/clusterpb"
	"github.com/frayhq/fray/dispatcher/iris/internal/iris/jobpb"
	"github.com/frayhq/fray/jobs"
)

// Submit launches the job as "/<user>/<flattened fray id>". Submitting the
// same jobID again returns the existing Iris job without launching another.
//
// The fray run and request go into submit_argv as "fray --fray-job ID
// --fray-run RUN --fray-request JSON" (what Find reads back). An Iris job of
// the same name left by an earlier run of the job name (Iris keeps finished
// jobs) is not adopted: a finished one is replaced (Iris's default policy,
// which refuses to replace a running job), so a new run never reports an old
// result; a live one is never killed: Submit fails with an error matching
// dispatcher.ErrLiveElsewhere.
func (b *Backend) Submit(ctx context.Context, jobID, run string, req *jobs.JobRequest) (string, error) {
	lr, err := b.launchRequest(jobID, req)
	if err != nil {
		return "", err
	}
	if run != "" {
		lr.SubmitArgv = []string{"fray", "--fray-job", jobID, "--fray-run", run}
		if enc := dispatcher.EncodeRequest(req); enc != "" {
			lr.SubmitArgv = append(lr.SubmitArgv, "--fray-request", enc)
		}
	}
	if st, err := b.JobStatus(ctx, lr.Name); err == nil {
		if run == "" || submittedRun(st.GetRequest()) == run {
			return lr.Name, nil
		}
		if !remoteStatus(st.GetJob()).State.Terminal() {
			return "", fmt.Errorf("%w: iris job %s runs for fray run %q, not %q", dispatcher.ErrLiveElsewhere, lr.Name, submittedRun(st.GetRequest()), run)
		}
		// The log server keeps the earlier job's lines under the same
		// name: the dispatcher asked LogStart first.
		lr.ExistingJobPolicy = jobpb.ExistingJobPolicy_EXISTING_JOB_POLICY_UNSPECIFIED
	} else if !errors.Is(err, ErrNotFound) {
		return "", err
	}
	resp, err := call(ctx, b, "LaunchJob "+lr.Name, func(ctx context.Context) (*connect.Response[clusterpb.Controller_LaunchJobResponse], error) {
		return b.ctl.LaunchJob(ctx, connect.NewRequest(lr))
	})
	if err != nil {
		return "", err
	}
	id := lr.Name
	if rid := resp.Msg.GetJobId(); rid != "" {
		id = rid
	}
	b.finishedMu.Lock()
	delete(b.finished, id) // an earlier run's job of this name was seen finished
	b.finishedMu.Unlock()
	return id, nil
}

// LogStart is where the log lines of run's job will start
// (dispatcher.LogStarter): Iris's log server keeps the lines of a job that
// Submit replaces under the same name, so a new run starts after them. It
// is 0 when the name's Iris job already belongs to run (or, without a run,
// when one exists: Submit adopts it).
func (b *Backend) LogStart(ctx context.Context, jobID, run string) (int64, error) {
	name, err := b.wireName(jobID)
	if err != nil {
		return 0, err
	}
	st, err := b.JobStatus(ctx, name)
	switch {
	case err == nil && (run == "" || submittedRun(st.GetRequest()) == run):
		return 0, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return 0, err
	}
	return b.lastLogSeq(ctx, name)
}

// submittedRun is the fray run an Iris job was launched for ("" if none).
func submittedRun(lr *clusterpb.Controller_LaunchJobRequest) string {
	return submitArg(lr, "--fray-run")
}

// submitArg is the value after flag in the job's submit_argv ("" if none).
func submitArg(lr *clusterpb.Controller_LaunchJobRequest, flag string) string {
	argv := lr.GetSubmitArgv()
	for i := 0; i+1 < len(argv); i++ {
		if argv[i] == flag {
			return argv[i+1]
		}
	}
	return ""
}

// JobStatus returns Iris's GetJobStatus answer: the job and the request it
// was launched with.
func (b *Backend) JobStatus(ctx context.Context, externalID string) (*clusterpb.Controller_GetJobStatusResponse, error) {
	resp, err := call(ctx, b, "GetJobStatus "+externalID, func(ctx context.Context) (*connect.Response[clusterpb.Controller_GetJobStatusResponse], error) {
		return b.ctl.GetJobStatus(ctx, connect.NewRequest(&clusterpb.Controller_GetJobStatusRequest{JobId: externalID}))
	})
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// Status maps Iris's job state onto fray's: BUILDING is PENDING, KILLED is
// STOPPED, WORKER_FAILED and UNSCHEDULABLE are FAILED.
func (b *Backend) Status(ctx context.Context, externalID string) (dispatcher.RemoteStatus, error) {
	resp, err := b.JobStatus(ctx, externalID)
	if err != nil {
		return dispatcher.RemoteStatus{}, err
	}
	return b.settled(externalID, resp.GetJob()), nil
}

// settled holds a finished job's terminal state back for LogSettle after it
// was first seen (see Options.LogSettle), reporting it RUNNING (PENDING if it
// never started) meanwhile.
func (b *Backend) settled(id string, j *jobpb.JobStatus) dispatcher.RemoteStatus {
	st := remoteStatus(j)
	if !st.State.Terminal() || b.settle < 0 {
		return st
	}
	now := b.now()
	b.finishedMu.Lock()
	defer b.finishedMu.Unlock()
	for k, t := range b.finished {
		if now.Sub(t) > b.settle+5*time.Minute {
			delete(b.finished, k)
		}
	}
	first, seen := b.finished[id]
	if !seen {
		if fin := j.GetFinishedAt().GetEpochMs(); fin > 0 && now.Sub(time.UnixMilli(fin)) > 5*time.Minute {
			return st // finished long ago: its logs have settled
		}
		first = now
		b.finished[id] = now
	}
	if now.Sub(first) >= b.settle {
		return st
	}
	hold := dispatcher.RemoteStatus{State: jobs.StatusRunning, Message: "finishing: waiting for the last log lines"}
	if j.GetStartedAt().GetEpochMs() == 0 {
		hold.State = jobs.StatusPending
	}
	return hold
}

func remoteStatus(j *jobpb.JobStatus) dispatcher.RemoteStatus {
	st := dispatcher.RemoteStatus{StartedMS: j.GetStartedAt().GetEpochMs()}
	if st.StartedMS > 0 {
		st.FinishedMS = j.GetFinishedAt().GetEpochMs()
	}
	switch j.GetState() {
	case jobpb.JobState_JOB_STATE_RUNNING:
		st.State = jobs.StatusRunning
		st.Message = j.GetStatusMessage()
	case jobpb.JobState_JOB_STATE_SUCCEEDED:
		st.State = jobs.StatusSucceeded
	case jobpb.JobState_JOB_STATE_KILLED:
		st.State = jobs.StatusStopped
		st.Message = firstNonEmpty(j.GetError(), "killed")
	case jobpb.JobState_JOB_STATE_FAILED, jobpb.JobState_JOB_STATE_WORKER_FAILED, jobpb.JobState_JOB_STATE_UNSCHEDULABLE:
		st.State = jobs.StatusFailed
		st.Message = failure(j)
	default: // UNSPECIFIED, PENDING, BUILDING
		st.State = jobs.StatusPending
		st.Message = firstNonEmpty(j.GetPendingReason(), j.GetStatusMessage())
	}
	return st
}

// failure is the error of a failed job: Iris's job error, else the first
// failed task's, with the exit code and the Iris state.
func failure(j *jobpb.JobStatus) string {
	msg := j.GetError()
	code := j.GetExitCode()
	for _, t := range j.GetTasks() {
		if msg == "" && t.GetError() != "" {
			msg = t.GetError()
		}
		if code == 0 && t.GetExitCode() != 0 {
			code = t.GetExitCode()
		}
	}
	state := strings.TrimPrefix(j.GetState().String(), "JOB_STATE_")
	parts := []string{}
	if msg != "" {
		parts = append(parts, msg)
	}
	if code != 0 {
		parts = append(parts, fmt.Sprintf("exit code %d", code))
	}
	if j.GetPendingReason() != "" && j.GetState() == jobpb.JobState_JOB_STATE_UNSCHEDULABLE {
		parts = append(parts, j.GetPendingReason())
	}
	if len(parts) == 0 {
		return "iris: job " + strings.ToLower(state)
	}
	return strings.Join(parts, "; ") + " (iris " + state + ")"
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// logPage is how many log entries one Logs call asks for.
const logPage = 1000

// Logs returns the job's log lines (every task and attempt, stdout and
// stderr) after cursor, and the cursor to pass next. It reads
// finelog.logging.LogService/FetchLogs through the controller's endpoint
// proxy (what marin-iris 0.2.227 serves), else at the bare path, else the
// deprecated ControllerService/GetTaskLogs of older controllers. The cursor
// is the log store's autoincrement id in all three.
//
// A job that replaced an earlier run's job of the same name (see Submit)
// has that job's lines before its own: start at LogStart's cursor.
func (b *Backend) Logs(ctx context.Context, externalID string, cursor int64) ([]string, int64, error) {
	sources := []func() ([]string, int64, error){
		func() ([]string, int64, error) { return b.fetchLogs(ctx, b.logs[0], externalID, cursor) },
		func() ([]string, int64, error) { return b.fetchLogs(ctx, b.logs[1], externalID, cursor) },
		func() ([]string, int64, error) { return b.taskLogs(ctx, externalID, cursor) },
	}
	start := int(b.logPath.Load())
	var errs []error
	for i := range sources {
		idx := (start + i) % len(sources)
		lines, next, err := sources[idx]()
		var re *RPCError
		// connect-go reports an HTTP 404 (no such path) as unimplemented.
		if errors.As(err, &re) && re.Code == connect.CodeUnimplemented {
			errs = append(errs, err)
			continue
		}
		if err == nil {
			b.logPath.Store(int32(idx))
		}
		return lines, next, err
	}
	return nil, cursor, fmt.Errorf("iris: the controller at %s serves no logs (tried %s/finelog.logging.LogService/FetchLogs, the bare path and ControllerService/GetTaskLogs): %w", b.base, LogProxyPath, errors.Join(errs...))
}

// lastLogSeq is the cursor after every log line now stored for job name (0
// when it has none).
func (b *Backend) lastLogSeq(ctx context.Context, name string) (int64, error) {
	// The newest line through the log server (tail), else page through.
	for _, c := range b.logs {
		resp, err := call(ctx, b, "FetchLogs "+name, func(ctx context.Context) (*connect.Response[loggingpb.FetchLogsResponse], error) {
			return c.FetchLogs(ctx, connect.NewRequest(&loggingpb.FetchLogsRequest{
				Source: strings.TrimSuffix(name, "/") + "/", MatchScope: loggingpb.MatchScope_MATCH_SCOPE_PREFIX, Tail: true, MaxLines: 1,
			}))
		})
		if err == nil {
			var last int64
			for _, e := range resp.Msg.GetEntries() {
				last = max(last, e.GetSeq())
			}
			return last, nil
		}
	}
	var last int64
	for {
		lines, next, err := b.Logs(ctx, name, last)
		if err != nil {
			return 0, err
		}
		if len(lines) == 0 || next <= last {
			return last, nil
		}
		last = next
	}
}

func (b *Backend) fetchLogs(ctx context.Context, c loggingpbconnect.LogServiceClient, externalID string, cursor int64) ([]string, int64, error) {
	req := &loggingpb.FetchLogsRequest{
		Source:     strings.TrimSuffix(externalID, "/") + "/",
		MatchScope: loggingpb.MatchScope_MATCH_SCOPE_PREFIX,
		Cursor:     cursor,
		MaxLines:   logPage,
	}
	resp, err := call(ctx, b, "FetchLogs "+externalID, func(ctx context.Context) (*connect.Response[loggingpb.FetchLogsResponse], error) {
		return c.FetchLogs(ctx, connect.NewRequest(req))
	})
	if err != nil {
		return nil, cursor, err
	}
	next := cursor
	lines := make([]string, 0, len(resp.Msg.GetEntries()))
	for _, e := range resp.Msg.GetEntries() {
		lines = append(lines, e.GetData())
		next = max(next, e.GetSeq())
	}
	if len(lines) > 0 {
		next = max(next, resp.Msg.GetCursor())
	}
	return lines, next, nil
}

func (b *Backend) taskLogs(ctx context.Context, externalID string, cursor int64) ([]string, int64, error) {
	req := &clusterpb.Controller_GetTaskLogsRequest{Id: externalID, AttemptId: -1, Cursor: cursor, MaxTotalLines: logPage}
	resp, err := call(ctx, b, "GetTaskLogs "+externalID, func(ctx context.Context) (*connect.Response[clusterpb.Controller_GetTaskLogsResponse], error) {
		return b.ctl.GetTaskLogs(ctx, connect.NewRequest(req))
	})
	if err != nil {
		return nil, cursor, err
	}
	var lines []string
	for _, batch := range resp.Msg.GetTaskLogs() {
		for _, e := range batch.GetLogs() {
			lines = append(lines, e.GetData())
		}
	}
	next := cursor
	if len(lines) > 0 {
		next = max(next, resp.Msg.GetCursor())
	}
	return lines, next, nil
}

// Stop terminates the job (and its children). Stopping a finished job is not
// an error.
func (b *Backend) Stop(ctx context.Context, externalID string) error {
	_, err := call(ctx, b, "TerminateJob "+externalID, func(ctx context.Context) (*connect.Response[jobpb.Empty], error) {
		return b.ctl.TerminateJob(ctx, connect.NewRequest(&clusterpb.Controller_TerminateJobRequest{JobId: externalID}))
	})
	return err
}
