package iris

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/dispatcher/iris/internal/finelog/loggingpb"
	"github.com/frayhq/fray/dispatcher/iris/internal/iris/clusterpb"
	"github.com/frayhq/fray/dispatcher/iris/internal/iris/jobpb"
	"github.com/frayhq/fray/jobs"
)

// Kind is "iris" (dispatcher.Located).
func (b *Backend) Kind() string { return "iris" }

// Address is the controller URL (dispatcher.Located).
func (b *Backend) Address() string { return b.base }

// Find returns the Iris job of fray job jobID (dispatcher.Finder): its name
// is the job id's wire name, and its run and request are in submit_argv.
func (b *Backend) Find(ctx context.Context, jobID string) (*dispatcher.RemoteJob, error) {
	name, err := b.wireName(jobID)
	if err != nil {
		return nil, err
	}
	st, err := b.JobStatus(ctx, name)
	if err != nil {
		return nil, err
	}
	return b.remoteJob(st.GetJob(), st.GetRequest()), nil
}

// remoteJob describes Iris job j, launched with lr (nil if unknown).
func (b *Backend) remoteJob(j *jobpb.JobStatus, lr *clusterpb.Controller_LaunchJobRequest) *dispatcher.RemoteJob {
	rj := &dispatcher.RemoteJob{
		ExternalID:  j.GetJobId(),
		Status:      b.settledByClock(j),
		SubmittedMS: j.GetSubmittedAt().GetEpochMs(),
	}
	if id, ok := b.frayID(j.GetJobId()); ok {
		rj.JobID = id
		rj.Name = id[strings.LastIndexByte(id, '/')+1:]
	}
	if lr != nil {
		if id := submitArg(lr, "--fray-job"); id != "" {
			rj.JobID = id
			rj.Name = id[strings.LastIndexByte(id, '/')+1:]
		}
		rj.Run = submittedRun(lr)
		rj.Request = dispatcher.DecodeRequest(submitArg(lr, "--fray-request"))
	}
	return rj
}

// LogStartOf is the log cursor before the first line of rj's run
// (dispatcher.LogFinder): the log server keeps every run of a name under the
// same keys, so it is the cursor before the first line stamped after rj was
// submitted (the least seq of a page of those lines, whichever end of them
// the log server pages from), or, when it has none yet, after every line
// stored so far.
func (b *Backend) LogStartOf(ctx context.Context, rj *dispatcher.RemoteJob) (int64, error) {
	last, err := b.lastLogSeq(ctx, rj.ExternalID)
	if err != nil || rj.SubmittedMS == 0 {
		return 0, err
	}
	var errs []error
	for _, c := range b.logs {
		resp, err := call(ctx, b, "FetchLogs "+rj.ExternalID, func(ctx context.Context) (*connect.Response[loggingpb.FetchLogsResponse], error) {
			return c.FetchLogs(ctx, connect.NewRequest(&loggingpb.FetchLogsRequest{
				Source: strings.TrimSuffix(rj.ExternalID, "/") + "/", MatchScope: loggingpb.MatchScope_MATCH_SCOPE_PREFIX,
				SinceMs: rj.SubmittedMS - 1, MaxLines: logPage,
			}))
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range resp.Msg.GetEntries() {
			last = min(last, e.GetSeq()-1)
		}
		return max(last, 0), nil
	}
	return 0, errors.Join(errs...)
}

// listLimit is Iris's largest ListJobs page.
const listLimit = 500

// listConcurrency bounds the GetJobStatus calls List makes at once.
const listConcurrency = 8

// List returns the Iris jobs under "/<user>/"; JobID is fray's id for the
// jobs fray named, whose run and request List reads with one GetJobStatus
// each.
func (b *Backend) List(ctx context.Context) ([]dispatcher.RemoteJob, error) {
	var jobsSeen []*jobpb.JobStatus
	for offset := int32(0); ; offset += listLimit {
		q := &clusterpb.Controller_JobQuery{
			Scope:       clusterpb.Controller_JOB_QUERY_SCOPE_ROOTS,
			JobIdPrefix: "/" + b.user + "/",
			Offset:      offset,
			Limit:       listLimit,
		}
		resp, err := call(ctx, b, "ListJobs", func(ctx context.Context) (*connect.Response[clusterpb.Controller_ListJobsResponse], error) {
			return b.ctl.ListJobs(ctx, connect.NewRequest(&clusterpb.Controller_ListJobsRequest{Query: q}))
		})
		if err != nil {
			return nil, err
		}
		jobsSeen = append(jobsSeen, resp.Msg.GetJobs()...)
		if !resp.Msg.GetHasMore() || len(resp.Msg.GetJobs()) == 0 {
			break
		}
	}
	out := make([]dispatcher.RemoteJob, len(jobsSeen))
	errs := make([]error, len(jobsSeen))
	sem := make(chan struct{}, listConcurrency)
	var wg sync.WaitGroup
	for i, j := range jobsSeen {
		if _, ok := b.frayID(j.GetJobId()); !ok {
			out[i] = *b.remoteJob(j, nil)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			st, err := b.JobStatus(ctx, j.GetJobId())
			switch {
			case errors.Is(err, ErrNotFound): // removed since the listing
				out[i] = *b.remoteJob(j, nil)
			case err != nil:
				errs[i] = fmt.Errorf("job %s: %w", j.GetJobId(), err)
			default:
				out[i] = *b.remoteJob(st.GetJob(), st.GetRequest())
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// settledByClock is settled for a job this backend may never have polled
// (another process submitted it): a finished job is held RUNNING (PENDING if
// it never started) only while Iris's own finished_at is less than
// LogSettle ago, the same answer in every process.
func (b *Backend) settledByClock(j *jobpb.JobStatus) dispatcher.RemoteStatus {
	st := remoteStatus(j)
	fin := j.GetFinishedAt().GetEpochMs()
	if !st.State.Terminal() || b.settle < 0 || fin == 0 || b.now().Sub(time.UnixMilli(fin)) >= b.settle {
		return st
	}
	hold := dispatcher.RemoteStatus{State: jobs.StatusRunning, Message: "finishing: waiting for the last log lines", StartedMS: st.StartedMS}
	if st.StartedMS == 0 {
		hold.State = jobs.StatusPending
	}
	return hold
}
