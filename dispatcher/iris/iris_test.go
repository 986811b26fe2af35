package iris

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/dispatcher/iris/internal/finelog/loggingpb"
	"github.com/frayhq/fray/dispatcher/iris/internal/finelog/loggingpb/loggingpbconnect"
	"github.com/frayhq/fray/dispatcher/iris/internal/iris/clusterpb"
	"github.com/frayhq/fray/dispatcher/iris/internal/iris/clusterpb/clusterpbconnect"
	"github.com/frayhq/fray/dispatcher/iris/internal/iris/jobpb"
	irislogpb "github.com/frayhq/fray/dispatcher/iris/internal/iris/loggingpb"
	"github.com/frayhq/fray/dispatcher/iris/internal/iris/timepb"
	"github.com/frayhq/fray/jobs"
)

// fakeController is an in-process Iris controller: it records LaunchJob
// requests and answers with scripted errors first.
type fakeController struct {
	clusterpbconnect.UnimplementedControllerServiceHandler
	mu       sync.Mutex
	launched []*clusterpb.Controller_LaunchJobRequest
	jobs     map[string]*jobpb.JobStatus
	requests map[string]*clusterpb.Controller_LaunchJobRequest // by job name
	errs     []error                                           // returned, in order, by the next calls
	calls    atomic.Int32
	url      string
}

func (f *fakeController) nextErr() error {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) == 0 {
		return nil
	}
	err := f.errs[0]
	f.errs = f.errs[1:]
	return err
}

func (f *fakeController) LaunchJob(_ context.Context, r *connect.Request[clusterpb.Controller_LaunchJobRequest]) (*connect.Response[clusterpb.Controller_LaunchJobResponse], error) {
	if err := f.nextErr(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.launched = append(f.launched, r.Msg)
	if f.requests == nil {
		f.requests = map[string]*clusterpb.Controller_LaunchJobRequest{}
	}
	f.requests[r.Msg.Name] = r.Msg
	f.jobs[r.Msg.Name] = &jobpb.JobStatus{JobId: r.Msg.Name, State: jobpb.JobState_JOB_STATE_PENDING}
	return connect.NewResponse(&clusterpb.Controller_LaunchJobResponse{JobId: r.Msg.Name}), nil
}

func (f *fakeController) GetJobStatus(_ context.Context, r *connect.Request[clusterpb.Controller_GetJobStatusRequest]) (*connect.Response[clusterpb.Controller_GetJobStatusResponse], error) {
	if err := f.nextErr(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[r.Msg.JobId]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("Job "+r.Msg.JobId+" not found"))
	}
	return connect.NewResponse(&clusterpb.Controller_GetJobStatusResponse{Job: j, Request: f.requests[r.Msg.JobId]}), nil
}

func (f *fakeController) ListJobs(_ context.Context, r *connect.Request[clusterpb.Controller_ListJobsRequest]) (*connect.Response[clusterpb.Controller_ListJobsResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &clusterpb.Controller_ListJobsResponse{}
	for id, j := range f.jobs {
		if strings.HasPrefix(id, r.Msg.GetQuery().GetJobIdPrefix()) {
			out.Jobs = append(out.Jobs, j)
		}
	}
	return connect.NewResponse(out), nil
}

// GetTaskLogs serves the legacy log RPC: entries with seq > cursor.
func (f *fakeController) GetTaskLogs(_ context.Context, r *connect.Request[clusterpb.Controller_GetTaskLogsRequest]) (*connect.Response[clusterpb.Controller_GetTaskLogsResponse], error) {
	if r.Msg.AttemptId != -1 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("want all attempts"))
	}
	out := &clusterpb.Controller_GetTaskLogsResponse{Cursor: r.Msg.Cursor}
	batch := &clusterpb.Controller_TaskLogBatch{TaskId: r.Msg.Id + "/0"}
	for i, d := range []string{"old-one", "old-two"} {
		if seq := int64(i + 1); seq > r.Msg.Cursor {
			batch.Logs = append(batch.Logs, &irislogpb.LogEntry{Data: d, Source: "stdout"})
			out.Cursor = seq
		}
	}
	out.TaskLogs = []*clusterpb.Controller_TaskLogBatch{batch}
	return connect.NewResponse(out), nil
}

type fakeLogs struct {
	loggingpbconnect.UnimplementedLogServiceHandler
	entries []*loggingpb.LogEntry
	sources []string
}

func (f *fakeLogs) FetchLogs(_ context.Context, r *connect.Request[loggingpb.FetchLogsRequest]) (*connect.Response[loggingpb.FetchLogsResponse], error) {
	f.sources = append(f.sources, r.Msg.Source)
	out := &loggingpb.FetchLogsResponse{Cursor: r.Msg.Cursor}
	for _, e := range f.entries {
		if e.Seq > r.Msg.Cursor && strings.HasPrefix(e.Key, r.Msg.Source) && r.Msg.MatchScope == loggingpb.MatchScope_MATCH_SCOPE_PREFIX {
			out.Entries = append(out.Entries, e)
			out.Cursor = e.Seq
		}
	}
	return connect.NewResponse(out), nil
}

var fastRetry = Retry{Attempts: 4, Initial: time.Millisecond, Max: 5 * time.Millisecond}

func today() time.Time { return time.Date(2026, 11, 26, 23, 59, 0, 0, time.FixedZone("x", -5*3600)) }

// serve starts the fake controller (and the log service under the
// controller's proxy path, or at the bare path when bare is set).
func serve(t *testing.T, logs *fakeLogs, bare bool) (*fakeController, *Backend) {
	t.Helper()
	fc := &fakeController{jobs: map[string]*jobpb.JobStatus{}}
	mux := http.NewServeMux()
	mux.Handle(clusterpbconnect.NewControllerServiceHandler(fc))
	if logs != nil {
		path, h := loggingpbconnect.NewLogServiceHandler(logs)
		if bare {
			mux.Handle(path, h)
		} else {
			mux.Handle(LogProxyPath+path, http.StripPrefix(LogProxyPath, h))
		}
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	fc.url = srv.URL
	b, err := New(Options{Controller: srv.URL, User: "alice", Retry: fastRetry, Now: today})
	if err != nil {
		t.Fatal(err)
	}
	return fc, b
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func argvJob(argv ...string) *jobs.JobRequest {
	return &jobs.JobRequest{Name: "train", Entrypoint: jobs.Entrypoint{Argv: argv}}
}

func TestAnIrisErrorCodeIsReportedWithItsMessageAndNotRetried(t *testing.T) {
	fc, b := serve(t, nil, false)
	fc.errs = []error{connect.NewError(connect.CodeFailedPrecondition, errors.New("marin-iris client is too old: your build is 2026-01-01"))}
	_, err := b.Status(ctx(t), "/alice/x")
	var re *RPCError
	if !errors.As(err, &re) || re.Code != connect.CodeFailedPrecondition {
		t.Fatalf("err = %v, want an RPCError failed_precondition", err)
	}
	if !strings.Contains(err.Error(), "failed_precondition: marin-iris client is too old") {
		t.Errorf("error %q does not quote Iris", err)
	}
	if n := fc.calls.Load(); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
	if _, err := b.Status(ctx(t), "/alice/nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown job: %v, want ErrNotFound", err)
	}
}

func TestUnavailableIsRetriedThenSucceeds(t *testing.T) {
	fc, b := serve(t, nil, false)
	fc.errs = []error{connect.NewError(connect.CodeUnavailable, errors.New("starting")), connect.NewError(connect.CodeUnavailable, errors.New("starting"))}
	id, err := b.Submit(ctx(t), "/ns/train", "", argvJob("true"))
	if err != nil || id != "/alice/ns.train" {
		t.Fatalf("Submit = %q, %v", id, err)
	}
}

func TestAResetConnectionIsRetried(t *testing.T) {
	fc := &fakeController{jobs: map[string]*jobpb.JobStatus{"/alice/x": {JobId: "/alice/x", State: jobpb.JobState_JOB_STATE_RUNNING}}}
	path, h := clusterpbconnect.NewControllerServiceHandler(fc)
	var resets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if resets.Add(1) == 1 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			_ = conn.(*net.TCPConn).SetLinger(0) // close with RST
			conn.Close()
			return
		}
		if !strings.HasPrefix(r.URL.Path, path) {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	b, err := New(Options{Controller: srv.URL, User: "alice", Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	st, err := b.Status(ctx(t), "/alice/x")
	if err != nil || st.State != jobs.StatusRunning {
		t.Fatalf("Status = %+v, %v; want RUNNING after a retry", st, err)
	}
	if n := resets.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestSubmittingTheSameJobTwiceLaunchesOnce(t *testing.T) {
	fc, b := serve(t, nil, false)
	for range 2 {
		if id, err := b.Submit(ctx(t), "/ns/train", "", argvJob("true")); err != nil || id != "/alice/ns.train" {
			t.Fatalf("Submit = %q, %v", id, err)
		}
	}
	if len(fc.launched) != 1 {
		t.Errorf("%d launches, want 1", len(fc.launched))
	}
}

func launched(t *testing.T, jobID string, req *jobs.JobRequest) *clusterpb.Controller_LaunchJobRequest {
	t.Helper()
	fc, b := serve(t, nil, false)
	if _, err := b.Submit(ctx(t), jobID, "", req); err != nil {
		t.Fatal(err)
	}
	if len(fc.launched) != 1 {
		t.Fatalf("%d launches", len(fc.launched))
	}
	return fc.launched[0]
}

func sv(s string) *jobpb.AttributeValue {
	return &jobpb.AttributeValue{Value: &jobpb.AttributeValue_StringValue{StringValue: s}}
}

func TestLaunchJobCarriesExactFieldsForAGPUJob(t *testing.T) {
	f := false
	five := 5
	req := argvJob("python", "train.py", "--name", "my run")
	req.Resources = jobs.ResourceConfig{
		CPU: 8, RAM: "32g", Disk: "100g", Preemptible: &f, Regions: []string{"us-central1", "US-East4"},
		Zone: "us-central1-a", Device: jobs.DeviceConfig{Kind: jobs.DeviceGPU, Variant: "H100", Count: 8},
	}
	req.Environment = jobs.EnvironmentConfig{EnvVars: map[string]string{"WANDB_MODE": "offline"}, SetupCommands: []string{"uv sync"}}
	req.MaxRetriesFailure, req.MaxRetriesPreemption, req.MaxTaskFailures = 2, &five, 1
	req.Timeout, req.SchedulingTimeout = 90*time.Minute, 15*time.Minute
	req.Constraints = []jobs.Constraint{{Key: "pool", Op: jobs.OpEQ, Values: []string{"research"}}, {Key: "tpu-name", Op: jobs.OpEXISTS}}
	got := launched(t, "/team/train", req)
	want := &clusterpb.Controller_LaunchJobRequest{
		Name: "/alice/team.train",
		Entrypoint: &jobpb.RuntimeEntrypoint{
			SetupCommands: []string{"uv sync"},
			RunCommand:    &jobpb.CommandEntrypoint{Argv: []string{"python", "train.py", "--name", "my run"}},
		},
		Resources: &jobpb.ResourceSpecProto{
			CpuMillicores: 8000, MemoryBytes: 32 << 30, DiskBytes: 100 << 30,
			Device: &jobpb.DeviceConfig{Device: &jobpb.DeviceConfig_Gpu{Gpu: &jobpb.GpuDevice{Variant: "H100", Count: 8}}},
		},
		Environment: &jobpb.EnvironmentConfig{EnvVars: map[string]string{
			"WANDB_MODE": "offline", "FRAY_JOB_ID": "/team/train", "FRAY_NAMESPACE": "team", "FRAY_NUM_TASKS": "1", "FRAY_TASK_INDEX": "0",
		}},
		MaxTaskFailures:      1,
		MaxRetriesFailure:    2,
		MaxRetriesPreemption: 5,
		Constraints: []*jobpb.Constraint{
			{Key: "preemptible", Op: jobpb.ConstraintOp_CONSTRAINT_OP_EQ, Value: sv("false")},
			{Key: "region", Op: jobpb.ConstraintOp_CONSTRAINT_OP_IN, Values: []*jobpb.AttributeValue{sv("us-central1"), sv("us-east4")}},
			{Key: "zone", Op: jobpb.ConstraintOp_CONSTRAINT_OP_EQ, Value: sv("us-central1-a")},
			{Key: "pool", Op: jobpb.ConstraintOp_CONSTRAINT_OP_EQ, Value: sv("research")},
			{Key: "tpu-name", Op: jobpb.ConstraintOp_CONSTRAINT_OP_EXISTS},
		},
		Replicas:           1,
		Timeout:            &timepb.Duration{Milliseconds: 90 * 60 * 1000},
		SchedulingTimeout:  &timepb.Duration{Milliseconds: 15 * 60 * 1000},
		ExistingJobPolicy:  jobpb.ExistingJobPolicy_EXISTING_JOB_POLICY_KEEP,
		ClientRevisionDate: "2026-11-27", // today in UTC
	}
	if !proto.Equal(got, want) {
		t.Errorf("LaunchJob request differs:\n%s", diff(got, want))
	}
}

func TestLaunchJobCarriesExactFieldsForATPUSlice(t *testing.T) {
	adopt := false
	req := argvJob("python", "-m", "levanter.main")
	if err := req.WithTPU("v5e-16", 1); err != nil {
		t.Fatal(err)
	}
	req.Resources.CPU = 4
	req.Resources.Regions = []string{"*"}
	req.Resources.DeviceAlternatives = []string{"v6e-16"}
	req.AdoptExisting = &adopt
	got := launched(t, "/ns/llama/sweep.1", req)
	want := &clusterpb.Controller_LaunchJobRequest{
		Name: "/alice/ns.llama.sweep%2E1",
		Entrypoint: &jobpb.RuntimeEntrypoint{
			RunCommand: &jobpb.CommandEntrypoint{Argv: []string{"python", "-m", "levanter.main"}},
		},
		Resources: &jobpb.ResourceSpecProto{
			CpuMillicores: 4000,
			Device:        &jobpb.DeviceConfig{Device: &jobpb.DeviceConfig_Tpu{Tpu: &jobpb.TpuDevice{Variant: "v5litepod-16", Topology: "4x4", Count: 4}}},
		},
		// One environment for every replica: no FRAY_TASK_INDEX.
		Environment: &jobpb.EnvironmentConfig{EnvVars: map[string]string{
			"FRAY_JOB_ID": "/ns/llama/sweep.1", "FRAY_NAMESPACE": "ns", "FRAY_NUM_TASKS": "4",
		}},
		MaxRetriesPreemption: 100,
		Constraints: []*jobpb.Constraint{
			{Key: "region", Op: jobpb.ConstraintOp_CONSTRAINT_OP_EXISTS},
			{Key: "device-variant", Op: jobpb.ConstraintOp_CONSTRAINT_OP_IN, Values: []*jobpb.AttributeValue{sv("v5litepod-16"), sv("v6e-16")}},
		},
		Coscheduling:       &jobpb.CoschedulingConfig{GroupBy: "tpu-name"},
		Replicas:           4,
		ExistingJobPolicy:  jobpb.ExistingJobPolicy_EXISTING_JOB_POLICY_ERROR,
		ClientRevisionDate: "2026-11-27",
	}
	if !proto.Equal(got, want) {
		t.Errorf("LaunchJob request differs:\n%s", diff(got, want))
	}
}

func diff(got, want proto.Message) string {
	return "got:  " + prototext.Format(got) + "\nwant: " + prototext.Format(want)
}

func TestValidateRefusesWhatIrisCannotHonour(t *testing.T) {
	_, b := serve(t, nil, false)
	for name, mod := range map[string]func(r *jobs.JobRequest){
		"func entrypoint": func(r *jobs.JobRequest) { r.Entrypoint = jobs.Entrypoint{Func: "train"} },
		"image":           func(r *jobs.JobRequest) { r.Resources.Image = "img" },
		"pip packages":    func(r *jobs.JobRequest) { r.Environment.PipPackages = []string{"torch"} },
		"constraint op":   func(r *jobs.JobRequest) { r.Constraints = []jobs.Constraint{{Key: "a", Op: "LIKE"}} },
	} {
		r := argvJob("true")
		mod(r)
		if err := b.Validate(r); !errors.Is(err, dispatcher.ErrUnsupported) {
			t.Errorf("%s: Validate = %v, want ErrUnsupported", name, err)
		}
	}
}

func TestStatusMapsIrisStates(t *testing.T) {
	for s, want := range map[jobpb.JobState]jobs.JobStatus{
		jobpb.JobState_JOB_STATE_UNSPECIFIED:   jobs.StatusPending,
		jobpb.JobState_JOB_STATE_PENDING:       jobs.StatusPending,
		jobpb.JobState_JOB_STATE_BUILDING:      jobs.StatusPending,
		jobpb.JobState_JOB_STATE_RUNNING:       jobs.StatusRunning,
		jobpb.JobState_JOB_STATE_SUCCEEDED:     jobs.StatusSucceeded,
		jobpb.JobState_JOB_STATE_FAILED:        jobs.StatusFailed,
		jobpb.JobState_JOB_STATE_KILLED:        jobs.StatusStopped,
		jobpb.JobState_JOB_STATE_WORKER_FAILED: jobs.StatusFailed,
		jobpb.JobState_JOB_STATE_UNSCHEDULABLE: jobs.StatusFailed,
	} {
		if got := remoteStatus(&jobpb.JobStatus{State: s}); got.State != want {
			t.Errorf("%s → %s, want %s", s, got.State, want)
		}
	}
	st := remoteStatus(&jobpb.JobStatus{State: jobpb.JobState_JOB_STATE_FAILED, Tasks: []*jobpb.TaskStatus{{Error: "OOM killed", ExitCode: 137}}})
	if st.Message != "OOM killed; exit code 137 (iris FAILED)" {
		t.Errorf("failure message %q", st.Message)
	}
	st = remoteStatus(&jobpb.JobStatus{State: jobpb.JobState_JOB_STATE_SUCCEEDED,
		StartedAt: &timepb.Timestamp{EpochMs: 5}, FinishedAt: &timepb.Timestamp{EpochMs: 9}})
	if st.StartedMS != 5 || st.FinishedMS != 9 {
		t.Errorf("times: started %d finished %d, want Iris's 5 and 9", st.StartedMS, st.FinishedMS)
	}
	if st = remoteStatus(&jobpb.JobStatus{State: jobpb.JobState_JOB_STATE_KILLED, FinishedAt: &timepb.Timestamp{EpochMs: 9}}); st.StartedMS != 0 || st.FinishedMS != 0 {
		t.Errorf("a job killed before it started has times %d, %d; want none", st.StartedMS, st.FinishedMS)
	}
}

func TestAFinishedJobIsReportedFinishedOnlyAfterItsLogsSettle(t *testing.T) {
	fc, _ := serve(t, nil, false)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b, err := New(Options{Controller: fc.url, Retry: fastRetry, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	fc.jobs["/fray/ns.done"] = &jobpb.JobStatus{State: jobpb.JobState_JOB_STATE_SUCCEEDED,
		StartedAt: &timepb.Timestamp{EpochMs: now.UnixMilli() - 1000}, FinishedAt: &timepb.Timestamp{EpochMs: now.UnixMilli()}}
	fc.jobs["/fray/ns.old"] = &jobpb.JobStatus{State: jobpb.JobState_JOB_STATE_FAILED, Error: "boom",
		FinishedAt: &timepb.Timestamp{EpochMs: now.Add(-time.Hour).UnixMilli()}}
	if st, _ := b.Status(ctx(t), "/fray/ns.done"); st.State != jobs.StatusRunning {
		t.Fatalf("just finished: %+v, want RUNNING while its logs settle", st)
	}
	mu.Lock()
	now = now.Add(1500 * time.Millisecond)
	mu.Unlock()
	if st, _ := b.Status(ctx(t), "/fray/ns.done"); st.State != jobs.StatusRunning {
		t.Fatalf("1.5 s later: %+v, want RUNNING", st)
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	if st, _ := b.Status(ctx(t), "/fray/ns.done"); st.State != jobs.StatusSucceeded {
		t.Fatalf("2.5 s later: %+v, want SUCCEEDED", st)
	}
	if st, _ := b.Status(ctx(t), "/fray/ns.old"); st.State != jobs.StatusFailed || !strings.Contains(st.Message, "boom") {
		t.Fatalf("finished an hour ago: %+v, want FAILED at once", st)
	}
}

func TestLogsAreIncrementalThroughTheControllerProxy(t *testing.T) {
	for _, bare := range []bool{false, true} {
		logs := &fakeLogs{entries: []*loggingpb.LogEntry{
			{Key: "/alice/ns.train/0:0", Data: "one", Seq: 3},
			{Key: "/alice/ns.train2/0:0", Data: "other job", Seq: 4},
			{Key: "/alice/ns.train/0:0", Data: "two", Seq: 7},
		}}
		_, b := serve(t, logs, bare)
		lines, next, err := b.Logs(ctx(t), "/alice/ns.train", 0)
		if err != nil || strings.Join(lines, ",") != "one,two" || next != 7 {
			t.Fatalf("bare=%v: Logs = %q, %d, %v", bare, lines, next, err)
		}
		logs.entries = append(logs.entries, &loggingpb.LogEntry{Key: "/alice/ns.train/1:0", Data: "three", Seq: 9})
		lines, next, err = b.Logs(ctx(t), "/alice/ns.train", next)
		if err != nil || strings.Join(lines, ",") != "three" || next != 9 {
			t.Fatalf("bare=%v: second Logs = %q, %d, %v", bare, lines, next, err)
		}
		if lines, next2, _ := b.Logs(ctx(t), "/alice/ns.train", next); len(lines) != 0 || next2 != next {
			t.Fatalf("bare=%v: poll at the end = %q, %d", bare, lines, next2)
		}
	}
}

func TestLogsFallBackToGetTaskLogsOnOlderControllers(t *testing.T) {
	_, b := serve(t, nil, false) // no LogService anywhere
	lines, next, err := b.Logs(ctx(t), "/alice/ns.train", 0)
	if err != nil || strings.Join(lines, ",") != "old-one,old-two" || next != 2 {
		t.Fatalf("Logs = %q, %d, %v", lines, next, err)
	}
	if lines, next2, err := b.Logs(ctx(t), "/alice/ns.train", next); err != nil || len(lines) != 0 || next2 != 2 {
		t.Fatalf("poll at the end = %q, %d, %v", lines, next2, err)
	}
}

func TestListReturnsFrayIDsOfTheUsersJobs(t *testing.T) {
	_, b := serve(t, nil, false)
	for _, id := range []string{"/ns/a", "/ns/b.c/d"} {
		if _, err := b.Submit(ctx(t), id, "", argvJob("true")); err != nil {
			t.Fatal(err)
		}
	}
	list, err := b.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, j := range list {
		got[j.ExternalID] = j.JobID
	}
	want := map[string]string{"/alice/ns.a": "/ns/a", "/alice/ns.b%2Ec.d": "/ns/b.c/d"}
	if len(got) != 2 || got["/alice/ns.a"] != want["/alice/ns.a"] || got["/alice/ns.b%2Ec.d"] != want["/alice/ns.b%2Ec.d"] {
		t.Errorf("List = %v, want %v", got, want)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{{}, {Controller: "ctl:10000"}, {Controller: "http://c:1", User: "a/b"}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestARefusedConnectionGivesUpAfterTheRetryBudget(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	b, err := New(Options{Controller: "http://" + addr, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Status(ctx(t), "/fray/x")
	if err == nil || !strings.Contains(err.Error(), "gave up after 4 attempts") {
		t.Fatalf("err = %v, want a connection error after 4 attempts", err)
	}
}

func TestRetriesOnFailureGetAFailureBudgetSoIrisActuallyRetries(t *testing.T) {
	req := argvJob("python", "train.py")
	req.MaxRetriesFailure = 3
	if got := launched(t, "/team/flaky", req); got.GetMaxRetriesFailure() != 3 || got.GetMaxTaskFailures() != 3 {
		t.Errorf("max_retries_failure %d, max_task_failures %d; want 3 and 3 (Iris aborts once failures exceed max_task_failures)",
			got.GetMaxRetriesFailure(), got.GetMaxTaskFailures())
	}
	req.MaxTaskFailures = 1 // the caller's own budget wins
	if got := launched(t, "/team/flaky", req); got.GetMaxTaskFailures() != 1 {
		t.Errorf("max_task_failures %d, want the request's 1", got.GetMaxTaskFailures())
	}
}

func TestANewRunOfAJobNameReplacesTheEarlierRunsJobAndItsLogsStartAfterThatJobsLines(t *testing.T) {
	logs := &fakeLogs{}
	fc, b := serve(t, logs, false)
	logStart := func(run string) int64 {
		t.Helper()
		start, err := b.LogStart(ctx(t), "/ns/train", run)
		if err != nil {
			t.Fatalf("LogStart %s: %v", run, err)
		}
		return start
	}
	if start := logStart("run-1"); start != 0 {
		t.Fatalf("LogStart of the name's first run = %d, want 0", start)
	}
	if _, err := b.Submit(ctx(t), "/ns/train", "run-1", argvJob("echo", "first")); err != nil {
		t.Fatal(err)
	}
	// The same run again (a dispatcher restarted mid-submit) adopts its job.
	if _, err := b.Submit(ctx(t), "/ns/train", "run-1", argvJob("echo", "first")); err != nil || len(fc.launched) != 1 {
		t.Fatalf("resubmitting run-1: %d launches, %v; want 1", len(fc.launched), err)
	}
	fc.mu.Lock()
	fc.jobs["/alice/ns.train"].State = jobpb.JobState_JOB_STATE_SUCCEEDED
	fc.mu.Unlock()
	logs.entries = append(logs.entries, &loggingpb.LogEntry{Key: "/alice/ns.train/0:0", Data: "first", Seq: 5})
	if start := logStart("run-1"); start != 0 {
		t.Fatalf("LogStart of run-1 with run-1's job launched = %d, want 0 (its lines are its own)", start)
	}

	start := logStart("run-2")
	if start != 5 {
		t.Fatalf("LogStart of run-2 = %d, want 5 (after run-1's lines)", start)
	}
	id, err := b.Submit(ctx(t), "/ns/train", "run-2", argvJob("echo", "second"))
	if err != nil || id != "/alice/ns.train" {
		t.Fatalf("Submit run-2 = %q, %v", id, err)
	}
	if len(fc.launched) != 2 || fc.launched[1].GetExistingJobPolicy() != jobpb.ExistingJobPolicy_EXISTING_JOB_POLICY_UNSPECIFIED {
		t.Fatalf("%d launches; want run-2 launched with Iris's default policy (replace the finished run-1 job, never a running one)", len(fc.launched))
	}
	logs.entries = append(logs.entries, &loggingpb.LogEntry{Key: "/alice/ns.train/0:0", Data: "second", Seq: 8})
	lines, _, err := b.Logs(ctx(t), id, start)
	if err != nil || strings.Join(lines, ",") != "second" {
		t.Fatalf("run-2 logs from LogStart = %q, %v; want only its own line", lines, err)
	}
}

func TestFrayJobVariablesWinOverTheRequestsAndTheClusterSpecIsSetOnlyWhenConfigured(t *testing.T) {
	req := argvJob("true")
	req.Environment.EnvVars = map[string]string{"FRAY_NAMESPACE": "spoof", "FRAY_CLUSTER_SPEC": "nats://mine:4222", "K": "V"}
	b, err := New(Options{Controller: "http://controller:10000"})
	if err != nil {
		t.Fatal(err)
	}
	lr, err := b.launchRequest("/ns/env", req)
	if err != nil {
		t.Fatal(err)
	}
	env := lr.GetEnvironment().GetEnvVars()
	if env["FRAY_NAMESPACE"] != "ns" || env["K"] != "V" || env["FRAY_CLUSTER_SPEC"] != "nats://mine:4222" {
		t.Errorf("env_vars %v: want fray's namespace, the request's K and (no spec configured) the request's spec", env)
	}
	b, err = New(Options{Controller: "http://controller:10000", ClusterSpec: "nats://broker:4222"})
	if err != nil {
		t.Fatal(err)
	}
	if lr, err = b.launchRequest("/ns/env", req); err != nil {
		t.Fatal(err)
	}
	if env := lr.GetEnvironment().GetEnvVars(); env["FRAY_CLUSTER_SPEC"] != "nats://broker:4222" {
		t.Errorf("env_vars %v: want the configured cluster spec", env)
	}
}

func TestALiveJobOfAnotherRunIsNeverReplacedAndFindReadsItsRunAndRequest(t *testing.T) {
	fc, b := serve(t, &fakeLogs{}, false)
	req := argvJob("sleep", "600")
	req.Environment.EnvVars = map[string]string{"K": "V"}
	if _, err := b.Submit(ctx(t), "/ns/live", "run-1", req); err != nil {
		t.Fatal(err)
	}
	fc.mu.Lock()
	fc.jobs["/alice/ns.live"].State = jobpb.JobState_JOB_STATE_RUNNING
	fc.jobs["/alice/ns.live"].SubmittedAt = &timepb.Timestamp{EpochMs: 1234}
	fc.mu.Unlock()
	_, err := b.Submit(ctx(t), "/ns/live", "run-2", argvJob("echo", "other"))
	if !errors.Is(err, dispatcher.ErrLiveElsewhere) || len(fc.launched) != 1 {
		t.Fatalf("Submit of run-2 over run-1's running job: %v, %d launches; want ErrLiveElsewhere and no launch", err, len(fc.launched))
	}
	rj, err := b.Find(ctx(t), "/ns/live")
	if err != nil {
		t.Fatal(err)
	}
	if rj.JobID != "/ns/live" || rj.Run != "run-1" || rj.ExternalID != "/alice/ns.live" || rj.SubmittedMS != 1234 ||
		rj.Status.State != jobs.StatusRunning || rj.Request == nil || rj.Request.Environment.EnvVars["K"] != "V" ||
		strings.Join(rj.Request.Entrypoint.Argv, " ") != "sleep 600" {
		t.Fatalf("Find = %+v (request %+v); want run-1's job with its request", rj, rj.Request)
	}
	if _, err := b.Find(ctx(t), "/ns/absent"); !errors.Is(err, dispatcher.ErrJobNotFound) {
		t.Fatalf("Find of an absent job: %v; want ErrJobNotFound", err)
	}
}
