package ray

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/jobs"
)

var fastRetry = Retry{Attempts: 4, Initial: time.Millisecond, Max: 5 * time.Millisecond}

func newBackend(t *testing.T, url string, mod ...func(*Options)) *Backend {
	t.Helper()
	o := Options{Address: url, Retry: fastRetry}
	for _, f := range mod {
		f(&o)
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func argvJob(argv ...string) *jobs.JobRequest {
	return &jobs.JobRequest{Name: "train", Entrypoint: jobs.Entrypoint{Argv: argv}}
}

// submitOK answers a submission like Ray does.
func submitOK(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	_ = json.NewEncoder(w).Encode(map[string]any{"job_id": body["submission_id"], "submission_id": body["submission_id"]})
}

func TestSubmitRetriesA503ThenSucceeds(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "No available agent to submit job, please try again later.", http.StatusServiceUnavailable)
			return
		}
		submitOK(w, r)
	}))
	defer srv.Close()
	id, err := newBackend(t, srv.URL).Submit(ctx(t), "/ns/train", "run-1", argvJob("true"))
	if err != nil || id == "" {
		t.Fatalf("Submit = %q, %v; want success after a retry", id, err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}
}

func TestStatusRetriesAResetConnection(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			_ = conn.(*net.TCPConn).SetLinger(0) // close with RST
			conn.Close()
			return
		}
		_ = json.NewEncoder(w).Encode(JobInfo{SubmissionID: "x", Status: "RUNNING", Message: "Job is currently running."})
	}))
	defer srv.Close()
	st, err := newBackend(t, srv.URL).Status(ctx(t), "x")
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.State != jobs.StatusRunning || st.Message != "Job is currently running." {
		t.Errorf("status %+v", st)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}
}

func TestConnectionErrorsGiveUpAfterTheRetryBudget(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	_, err := newBackend(t, "http://"+addr).Status(ctx(t), "x")
	if err == nil || !strings.Contains(err.Error(), "gave up after 4 attempts") {
		t.Fatalf("err = %v, want a connection error after 4 attempts", err)
	}
}

const rayTraceback = `Traceback (most recent call last):
  File ".../job_head.py", line 148, in submit_job_internal
    await self._raise_error(resp)
RuntimeError: Request failed with status code 400: Traceback (most recent call last):
  File ".../job_manager.py", line 553, in submit_job
    raise ValueError(
ValueError: Job with submission_id fray-x already exists. Please use a different submission_id.
.`

func TestA4xxIsNotRetriedAndQuotesRaysMessage(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "Traceback (most recent call last):\n  File \"x.py\"\nTypeError: entrypoint_memory must be an integer, got <class 'float'>", http.StatusBadRequest)
	}))
	defer srv.Close()
	_, err := newBackend(t, srv.URL).Submit(ctx(t), "/ns/train", "run-1", argvJob("true"))
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != 400 {
		t.Fatalf("err = %v, want an HTTPError 400", err)
	}
	if want := "TypeError: entrypoint_memory must be an integer, got <class 'float'>"; he.Message != want || !strings.Contains(err.Error(), want) {
		t.Errorf("message %q, want %q", he.Message, want)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d calls, want 1 (a 4xx is final)", n)
	}
}

func TestUnknownJobIsErrNotFound(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Job nope does not exist", http.StatusNotFound)
	}))
	defer srv.Close()
	_, err := newBackend(t, srv.URL).Status(ctx(t), "nope")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "Job nope does not exist") {
		t.Fatalf("err = %v, want ErrNotFound quoting Ray", err)
	}
}

func TestSubmittingTheSameJobTwiceReturnsTheFirstSubmission(t *testing.T) {
	var mu sync.Mutex
	known := map[string]bool{}
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == http.MethodPost {
			posts.Add(1)
			var body submitRequest
			_ = json.NewDecoder(r.Body).Decode(&body)
			if known[body.SubmissionID] {
				// What Ray 2.60 answers: the agent's 400 relayed as a 500.
				http.Error(w, rayTraceback, http.StatusInternalServerError)
				return
			}
			known[body.SubmissionID] = true
			_ = json.NewEncoder(w).Encode(map[string]string{"submission_id": body.SubmissionID})
			return
		}
		id := strings.TrimPrefix(r.URL.Path, "/api/jobs/")
		if !known[id] {
			http.Error(w, "Job "+id+" does not exist", http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(JobInfo{SubmissionID: id, Status: "RUNNING"})
	}))
	defer srv.Close()
	b := newBackend(t, srv.URL)
	first, err := b.Submit(ctx(t), "/ns/train", "run-1", argvJob("true"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := b.Submit(ctx(t), "/ns/train", "run-1", argvJob("true"))
	if err != nil || second != first {
		t.Fatalf("second Submit = %q, %v; want %q", second, err, first)
	}
	if n := posts.Load(); n != 2 {
		t.Errorf("%d POSTs, want 2 (the relayed 400 is not retried)", n)
	}
}

// capture records the JSON body of the first POST /api/jobs/.
func capture(t *testing.T, b func(string) *Backend, jobID string, req *jobs.JobRequest) map[string]any {
	t.Helper()
	var got map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/jobs/" {
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		}
		data, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(data, &got); err != nil {
			t.Error(err)
		}
		_, _ = w.Write([]byte(`{"job_id":"x","submission_id":"x"}`))
	}))
	defer srv.Close()
	if _, err := b(srv.URL).Submit(ctx(t), jobID, "", req); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestSubmitSendsExactFieldsForAGPUJob(t *testing.T) {
	req := argvJob("python", "train.py", "--lr", "3e-4", "--name", "my run")
	req.Resources = jobs.ResourceConfig{CPU: 8, RAM: "32g", Device: jobs.DeviceConfig{Kind: jobs.DeviceGPU, Variant: "H100", Count: 2}}
	req.Environment = jobs.EnvironmentConfig{
		EnvVars:     map[string]string{"WANDB_MODE": "offline"},
		PipPackages: []string{"torch==2.5.0"},
		Workdir:     "gs://bucket/code.zip",
	}
	b := func(u string) *Backend { return newBackend(t, u, func(o *Options) { o.Namespace = "lab" }) }
	got := capture(t, b, "/team/train", req)
	checkStoredRequest(t, got, req)
	want := map[string]any{
		"entrypoint":    "python train.py --lr 3e-4 --name 'my run'",
		"submission_id": "fray-lab-team-train-" + got["submission_id"].(string)[len("fray-lab-team-train-"):],
		"runtime_env": map[string]any{"env_vars": map[string]any{
			"WANDB_MODE":       "offline",
			"FRAY_JOB_ID":      "/team/train",
			"FRAY_NAMESPACE":   "team",
			"FRAY_TASK_INDEX":  "0",
			"FRAY_NUM_TASKS":   "1",
			"FRAY_JOB_ATTEMPT": "0",
		}, "pip": []any{"torch==2.5.0"}, "working_dir": "gs://bucket/code.zip"},
		"metadata":            map[string]any{"fray_job_id": "/team/train", "fray_job_name": "train", "fray_namespace": "lab"},
		"entrypoint_num_cpus": 8.0,
		"entrypoint_num_gpus": 2.0,
		"entrypoint_memory":   float64(32 << 30),
		"entrypoint_resources": map[string]any{
			"accelerator_type:H100": 0.001,
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("request\n got %v\nwant %v", got, want)
	}
	if id := got["submission_id"].(string); len(id) != len("fray-lab-team-train-")+10 {
		t.Errorf("submission id %q: want a 10-hex-digit hash suffix", id)
	}
}

func TestSubmitSendsExactFieldsForATPUSlice(t *testing.T) {
	req := argvJob("python", "-m", "levanter.main")
	if err := req.WithTPU("v5e-16", 1); err != nil {
		t.Fatal(err)
	}
	req.Environment.SetupCommands = []string{"cd /app", "source .venv/bin/activate"}
	got := capture(t, func(u string) *Backend { return newBackend(t, u) }, "/ns/llama", req)
	delete(got, "submission_id")
	checkStoredRequest(t, got, req)
	want := map[string]any{
		"entrypoint": "cd /app && source .venv/bin/activate && python -m levanter.main",
		"metadata":   map[string]any{"fray_job_id": "/ns/llama", "fray_job_name": "train"},
		// One entrypoint process: task 0 of 1, even for a slice.
		"runtime_env": map[string]any{"env_vars": map[string]any{
			"FRAY_JOB_ID": "/ns/llama", "FRAY_NAMESPACE": "ns", "FRAY_TASK_INDEX": "0", "FRAY_NUM_TASKS": "1", "FRAY_JOB_ATTEMPT": "0",
		}},
		// The entrypoint runs on the slice's head host (worker 0 carries
		// TPU-<GCP accelerator type>-head) and holds that host's 4 chips.
		"entrypoint_resources": map[string]any{"TPU": 4.0, "TPU-v5litepod-16-head": 1.0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("request\n got %v\nwant %v", got, want)
	}
}

func TestFrayJobVariablesWinOverTheRequestsAndTheClusterSpecIsSetOnlyWhenConfigured(t *testing.T) {
	req := argvJob("true")
	req.Environment.EnvVars = map[string]string{"FRAY_JOB_ID": "/spoof/x", "FRAY_CLUSTER_SPEC": "nats://mine:4222", "K": "V"}
	got := capture(t, func(u string) *Backend { return newBackend(t, u) }, "/ns/env", req)
	env := got["runtime_env"].(map[string]any)["env_vars"].(map[string]any)
	if env["FRAY_JOB_ID"] != "/ns/env" || env["K"] != "V" || env["FRAY_CLUSTER_SPEC"] != "nats://mine:4222" {
		t.Errorf("env_vars %v: want fray's job id, the request's K and (no spec configured) the request's spec", env)
	}
	got = capture(t, func(u string) *Backend {
		return newBackend(t, u, func(o *Options) { o.ClusterSpec = "nats://broker:4222" })
	}, "/ns/env", req)
	env = got["runtime_env"].(map[string]any)["env_vars"].(map[string]any)
	if env["FRAY_CLUSTER_SPEC"] != "nats://broker:4222" {
		t.Errorf("env_vars %v: want the configured cluster spec", env)
	}
}

func TestValidateRefusesWhatRayCannotHonour(t *testing.T) {
	b := newBackend(t, "http://ray.invalid:8265")
	f := false
	cases := map[string]func(r *jobs.JobRequest){
		"func entrypoint":            func(r *jobs.JobRequest) { r.Entrypoint = jobs.Entrypoint{Func: "train"} },
		"replicas with coscheduling": func(r *jobs.JobRequest) { r.Replicas = 4; r.Coscheduling = &jobs.Coscheduling{GroupBy: "rack"} },
		"replicas":                   func(r *jobs.JobRequest) { r.Replicas = 2 },
		"regions":                    func(r *jobs.JobRequest) { r.Resources.Regions = []string{"us-central1"} },
		"zone":                       func(r *jobs.JobRequest) { r.Resources.Zone = "us-central1-a" },
		"constraints": func(r *jobs.JobRequest) {
			r.Constraints = []jobs.Constraint{{Key: "pool", Op: jobs.OpEQ, Values: []string{"a"}}}
		},
		"non-preemptible":             func(r *jobs.JobRequest) { r.Resources.Preemptible = &f },
		"device alternatives":         func(r *jobs.JobRequest) { r.Resources.DeviceAlternatives = []string{"v5p-8"} },
		"disk":                        func(r *jobs.JobRequest) { r.Resources.Disk = "100g" },
		"image":                       func(r *jobs.JobRequest) { r.Environment.DockerImage = "img" },
		"failure retries":             func(r *jobs.JobRequest) { r.MaxRetriesFailure = 1 },
		"timeout":                     func(r *jobs.JobRequest) { r.Timeout = time.Hour },
		"scheduling timeout":          func(r *jobs.JobRequest) { r.SchedulingTimeout = time.Minute },
		"two TPU slices":              func(r *jobs.JobRequest) { _ = r.WithTPU("v5e-16", 2) },
		"TPU slice grouped otherwise": func(r *jobs.JobRequest) { _ = r.WithTPU("v5e-16", 1); r.Coscheduling.GroupBy = "zone" },
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			r := argvJob("true")
			mod(r)
			err := b.Validate(r)
			if !errors.Is(err, dispatcher.ErrUnsupported) {
				t.Fatalf("Validate = %v, want ErrUnsupported", err)
			}
		})
	}
	if err := b.Validate(argvJob("true")); err != nil {
		t.Errorf("plain argv job refused: %v", err)
	}
	single := argvJob("true")
	_ = single.WithTPU("v5e-16", 1)
	if err := b.Validate(single); err != nil {
		t.Errorf("one TPU slice refused: %v", err)
	}
}

func TestEntrypointQuotingSurvivesTheShell(t *testing.T) {
	args := []string{"plain", "two words", "it's", `"dq"`, "$HOME", "`id`", "a\\b", "", "*", "semi;colon", "new\nline", "ünï", "--flag=x y"}
	out, err := exec.Command("sh", "-c", entrypoint(nil, append([]string{"printf", "%s\\0"}, args...))).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if !reflect.DeepEqual(got, args) {
		t.Errorf("shell saw %q, want %q", got, args)
	}
}

func TestStatusMapsRayStatesAndKeepsRaysMessage(t *testing.T) {
	for ray, want := range map[string]jobs.JobStatus{
		"PENDING": jobs.StatusPending, "RUNNING": jobs.StatusRunning, "SUCCEEDED": jobs.StatusSucceeded,
		"FAILED": jobs.StatusFailed, "STOPPED": jobs.StatusStopped,
	} {
		st, err := remoteStatus(&JobInfo{Status: ray, Message: "msg " + ray})
		if err != nil || st.State != want || st.Message != "msg "+ray {
			t.Errorf("%s → %+v, %v; want %s", ray, st, err, want)
		}
	}
	if _, err := remoteStatus(&JobInfo{Status: "WEIRD"}); err == nil {
		t.Error("unknown status accepted")
	}
}

// fakeJob is Ray's API serving one job, "x", whose log and status the
// test sets; afterLogRead, when set, runs right after each log read.
type fakeJob struct {
	mu           sync.Mutex
	logs, status string
	afterLogRead func(j *fakeJob) // called with mu held
}

func (j *fakeJob) serve(t *testing.T) *Backend {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.mu.Lock()
		defer j.mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/logs") {
			_ = json.NewEncoder(w).Encode(map[string]string{"logs": j.logs})
			if j.afterLogRead != nil {
				j.afterLogRead(j)
			}
			return
		}
		_ = json.NewEncoder(w).Encode(JobInfo{SubmissionID: "x", Status: j.status})
	}))
	t.Cleanup(srv.Close)
	return newBackend(t, srv.URL)
}

func TestLogsAreIncrementalWithoutDuplicatesOrCutLines(t *testing.T) {
	job := &fakeJob{status: "RUNNING"}
	b := job.serve(t)
	set := func(l, s string) { job.mu.Lock(); job.logs, job.status = l, s; job.mu.Unlock() }
	poll := func(cursor int64) ([]string, int64) {
		lines, next, err := b.Logs(ctx(t), "x", cursor)
		if err != nil {
			t.Fatal(err)
		}
		return lines, next
	}
	lines, c := poll(0)
	if len(lines) != 0 || c != 0 {
		t.Fatalf("empty log gave %q, %d", lines, c)
	}
	set("one\ntw", "RUNNING")
	lines, c = poll(c)
	if !reflect.DeepEqual(lines, []string{"one"}) {
		t.Fatalf("got %q, want [one] (the cut line held back)", lines)
	}
	set("one\ntwo\nthree\nfou", "RUNNING")
	lines, c = poll(c)
	if !reflect.DeepEqual(lines, []string{"two", "three"}) {
		t.Fatalf("got %q, want [two three]", lines)
	}
	lines, c = poll(c)
	if len(lines) != 0 {
		t.Fatalf("repeat poll gave %q", lines)
	}
	set("one\ntwo\nthree\nfour", "SUCCEEDED")
	lines, c = poll(c)
	if !reflect.DeepEqual(lines, []string{"four"}) {
		t.Fatalf("got %q, want [four] once the job is over", lines)
	}
	if lines, _ = poll(c); len(lines) != 0 {
		t.Fatalf("poll after the end gave %q", lines)
	}
}

// A job that finishes its last line and ends between the log read and the
// status read of one poll gets that line whole: the line is taken from a
// log read after the status said the job is over.
func TestALineFinishedAsTheJobEndsIsNotCut(t *testing.T) {
	job := &fakeJob{logs: "one\ntw", status: "RUNNING", afterLogRead: func(j *fakeJob) {
		j.logs, j.status = "one\ntwo\n", "SUCCEEDED" // the job ends its line and exits
	}}
	b := job.serve(t)
	var got []string
	var cursor int64
	for range 3 {
		lines, next, err := b.Logs(ctx(t), "x", cursor)
		if err != nil {
			t.Fatal(err)
		}
		got, cursor = append(got, lines...), next
	}
	if want := []string{"one", "two"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
}

func TestRequestsCarryTheAuthTokenAndHeaders(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" || r.Header.Get("X-Proxy-Key") != "k" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`[{"submission_id":"fray-a","status":"SUCCEEDED","metadata":{"fray_job_id":"/ns/a","fray_job_name":"a"}},{"submission_id":null,"job_id":"01000000","status":"SUCCEEDED"}]`))
	}))
	defer srv.Close()
	b := newBackend(t, srv.URL, func(o *Options) {
		o.AuthToken = "s3cret"
		o.Headers = http.Header{"X-Proxy-Key": {"k"}}
	})
	list, err := b.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []dispatcher.RemoteJob{{ExternalID: "fray-a", JobID: "/ns/a", Name: "a", Status: dispatcher.RemoteStatus{State: jobs.StatusSucceeded}}}
	if !reflect.DeepEqual(list, want) {
		t.Errorf("List = %+v, want %+v", list, want)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{{}, {Address: "head:8265"}, {Address: "http://h:8265", Namespace: "a/b"}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestANewRunOfAJobNameIsANewRayJobWhileTheSameRunIsAdopted(t *testing.T) {
	b := newBackend(t, "http://ray.invalid")
	run1, _ := b.translate("/ns/train", "run-1", argvJob("true"))
	again, _ := b.translate("/ns/train", "run-1", argvJob("true"))
	run2, _ := b.translate("/ns/train", "run-2", argvJob("true"))
	if run1.SubmissionID != again.SubmissionID {
		t.Errorf("the same run got submission ids %q and %q", run1.SubmissionID, again.SubmissionID)
	}
	if run1.SubmissionID == run2.SubmissionID {
		t.Errorf("runs 1 and 2 share submission id %q: Ray would answer run 2 with run 1's finished job", run1.SubmissionID)
	}
	if !strings.HasPrefix(run2.SubmissionID, "fray-ns-train-") || run2.Metadata[MetaRun] != "run-2" {
		t.Errorf("run 2: id %q, metadata %v", run2.SubmissionID, run2.Metadata)
	}
	got := capture(t, func(u string) *Backend { return newBackend(t, u) }, "/ns/train", argvJob("true"))
	if got["submission_id"] != b.submissionID("/ns/train", "") {
		t.Errorf("Submit without a run: submission id %v", got["submission_id"])
	}
}

func TestAFailureMessageKeepsRaysCauseWithoutTheLogDump(t *testing.T) {
	st, err := remoteStatus(&JobInfo{Status: "FAILED", Message: "Job entrypoint command failed with exit code 3, last available logs (truncated to 20,000 chars):\nbye\nRunning entrypoint for job x: sh -c 'echo bye; exit 3'\n"})
	if err != nil || st.Message != "Job entrypoint command failed with exit code 3" {
		t.Errorf("FAILED → %q, %v", st.Message, err)
	}
}

func TestStatusGivesRaysStartAndEndTimesOnlyForAJobThatRan(t *testing.T) {
	for _, c := range []struct {
		info          JobInfo
		start, finish int64
	}{
		{JobInfo{Status: "PENDING", StartTime: 5}, 0, 0},
		{JobInfo{Status: "STOPPED", StartTime: 5, EndTime: 9}, 0, 0}, // stopped before it ran
		{JobInfo{Status: "RUNNING", DriverNodeID: "n1", StartTime: 5}, 5, 0},
		{JobInfo{Status: "SUCCEEDED", DriverNodeID: "n1", StartTime: 5, EndTime: 9}, 5, 9},
	} {
		st, err := remoteStatus(&c.info)
		if err != nil || st.StartedMS != c.start || st.FinishedMS != c.finish {
			t.Errorf("%+v → started %d finished %d, %v; want %d, %d", c.info, st.StartedMS, st.FinishedMS, err, c.start, c.finish)
		}
	}
}

func TestFindPicksTheNewestRunOfTheJobIDWithItsRequest(t *testing.T) {
	req := argvJob("python", "train.py")
	enc := dispatcher.EncodeRequest(req)
	body, _ := json.Marshal([]map[string]any{
		{"submission_id": "fray-old", "status": "SUCCEEDED", "start_time": 100, "metadata": map[string]string{MetaJobID: "/ns/train", MetaRun: "r1", MetaNamespace: "team"}},
		{"submission_id": "fray-new", "status": "RUNNING", "driver_node_id": "n1", "start_time": 200, "metadata": map[string]string{MetaJobID: "/ns/train", MetaRun: "r2", MetaNamespace: "team", MetaRequest: enc}},
		{"submission_id": "fray-elsewhere", "status": "RUNNING", "start_time": 300, "metadata": map[string]string{MetaJobID: "/ns/train", MetaRun: "r3", MetaNamespace: "other"}},
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }))
	defer srv.Close()
	b := newBackend(t, srv.URL, func(o *Options) { o.Namespace = "team" })
	rj, err := b.Find(ctx(t), "/ns/train")
	if err != nil {
		t.Fatal(err)
	}
	if rj.ExternalID != "fray-new" || rj.Run != "r2" || rj.SubmittedMS != 200 || rj.Status.State != jobs.StatusRunning ||
		rj.Request == nil || strings.Join(rj.Request.Entrypoint.Argv, " ") != "python train.py" {
		t.Fatalf("Find = %+v; want the namespace's newest run r2 with its request", rj)
	}
	if _, err := b.Find(ctx(t), "/ns/other"); !errors.Is(err, dispatcher.ErrJobNotFound) {
		t.Fatalf("Find of an unknown job: %v; want ErrJobNotFound", err)
	}
}

// checkStoredRequest checks that the submission's metadata keeps req (as
// Find reads it back), then drops it from got for the exact comparison.
func checkStoredRequest(t *testing.T, got map[string]any, req *jobs.JobRequest) {
	t.Helper()
	md, _ := got["metadata"].(map[string]any)
	enc, _ := md[MetaRequest].(string)
	back := dispatcher.DecodeRequest(enc)
	if back == nil || !reflect.DeepEqual(back.Entrypoint.Argv, req.Entrypoint.Argv) || back.Replicas != req.Replicas {
		t.Errorf("metadata %s = %q; want the request", MetaRequest, enc)
	}
	delete(md, MetaRequest)
}
