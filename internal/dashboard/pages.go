package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/clusterview"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
)

// stateCount is one state's count, for the badges.
type stateCount struct {
	State string
	N     int
}

var (
	jobStates   = []string{"PENDING", "RUNNING", "SUCCEEDED", "FAILED", "STOPPED"}
	actorStates = []string{actors.StatePlacing, actors.StateReady, actors.StateRestarting, actors.StateFailed, actors.StateStopped, actors.StateDead}
)

// common is what every content template may use.
type common struct {
	ClusterURL string
	Actions    bool
	CSRF       string
	PollError  string
	Loading    bool
}

func (s *Server) common() common {
	c := common{ClusterURL: s.o.ClusterURL, Actions: s.o.Actions != nil, PollError: s.view.PollError()}
	if c.Actions {
		c.CSRF = s.csrf
	}
	select {
	case <-s.view.Ready():
	default:
		c.Loading = true
	}
	return c
}

type overviewData struct {
	common
	Pools                                 []clusterview.Pool
	Workers, Slots, Busy, Running, Queued int
	JobStates, ActorStates                []stateCount
	Jobs, Actors                          int
	RecentJobs                            []*jobs.Record
	Failures                              []clusterview.Failure
}

func (s *Server) overview(r *http.Request) (string, any, error) {
	d := overviewData{common: s.common(), Pools: s.view.Pools()}
	for _, p := range d.Pools {
		d.Workers += p.Workers
		d.Slots += p.Slots
		d.Busy += p.Busy
		d.Running += p.Running
		d.Queued += int(p.Queued)
	}
	byJob := s.view.JobsByState()
	for _, st := range jobStates {
		d.JobStates = append(d.JobStates, stateCount{st, byJob[jobs.JobStatus(st)]})
		d.Jobs += byJob[jobs.JobStatus(st)]
	}
	byActor := s.view.ActorsByState()
	for _, st := range actorStates {
		d.ActorStates = append(d.ActorStates, stateCount{st, byActor[st]})
		d.Actors += byActor[st]
	}
	all := s.view.Jobs(jobs.Filter{})
	d.RecentJobs = all[:min(len(all), 8)]
	f := s.view.Failures()
	d.Failures = f[:min(len(f), 5)]
	return "Overview", d, nil
}

// jobRow is a job in the list, indented under its parent.
type jobRow struct {
	*jobs.Record
	Depth int
}

type jobsData struct {
	common
	Rows              []jobRow
	Namespaces        []string
	States            []string
	Namespace, State  string
	Total, AllInState int
}

func (s *Server) jobsPage(r *http.Request) (string, any, error) {
	q := r.URL.Query()
	d := jobsData{common: s.common(), Namespaces: s.view.Namespaces(), States: jobStates,
		Namespace: q.Get("namespace"), State: strings.ToUpper(q.Get("state"))}
	f := jobs.Filter{Namespace: d.Namespace}
	if d.State != "" {
		f.Status = []jobs.JobStatus{jobs.JobStatus(d.State)}
	}
	recs := s.view.Jobs(f)
	d.Total = len(s.view.Jobs(jobs.Filter{}))
	d.Rows = tree(recs)
	return "Jobs", d, nil
}

// tree orders recs (newest first) with each job's children right under
// it (oldest child first); a child whose parent is not in recs is a root.
func tree(recs []*jobs.Record) []jobRow {
	in := map[string]bool{}
	for _, r := range recs {
		in[r.ID] = true
	}
	children := map[string][]*jobs.Record{}
	var roots []*jobs.Record
	for _, r := range recs {
		if r.Parent != "" && in[r.Parent] {
			children[r.Parent] = append(children[r.Parent], r)
		} else {
			roots = append(roots, r)
		}
	}
	var out []jobRow
	var walk func(r *jobs.Record, depth int)
	walk = func(r *jobs.Record, depth int) {
		out = append(out, jobRow{r, min(depth, 6)})
		kids := children[r.ID]
		sort.SliceStable(kids, func(i, j int) bool { return kids[i].SubmittedMS < kids[j].SubmittedMS })
		for _, k := range kids {
			walk(k, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	return out
}

type jobData struct {
	common
	Job      *jobs.Record
	Command  string
	Request  string
	Children []*jobs.Record
}

// jobID is the job id of a /jobs/<id> path value ("ns/name" → "/ns/name").
func jobID(r *http.Request) string { return "/" + strings.Trim(r.PathValue("id"), "/") }

// job is job id's record: the view's, or for a job the view has not
// heard of yet (submitted a moment ago, or the view still loading) the
// stored one. nil means there is no such job.
func (s *Server) job(ctx context.Context, id string) *jobs.Record {
	if rec := s.view.Job(id); rec != nil {
		return rec
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := jobs.OpenStore(ctx, s.js)
	if err != nil {
		return nil
	}
	rec, _, err := st.Get(ctx, id)
	if err != nil {
		return nil
	}
	return rec
}

func (s *Server) jobPage(r *http.Request) (string, any, error) {
	id := jobID(r)
	rec := s.job(r.Context(), id)
	if rec == nil {
		return "", nil, errNotFound{fmt.Sprintf("There is no job %s. It may never have existed, or its record was removed; the jobs list shows every job this cluster keeps.", id)}
	}
	d := jobData{common: s.common(), Job: rec, Children: s.view.Jobs(jobs.Filter{Parent: id})}
	sort.SliceStable(d.Children, func(i, j int) bool { return d.Children[i].SubmittedMS < d.Children[j].SubmittedMS })
	if ep := rec.Request.Entrypoint; len(ep.Argv) > 0 {
		d.Command = strings.Join(ep.Argv, " ")
	} else if ep.Func != "" {
		d.Command = "func " + ep.Func
	}
	req := rec.Request
	req.Entrypoint.Arg = nil
	b, err := json.MarshalIndent(req, "", "  ")
	if err != nil {
		return "", nil, err
	}
	d.Request = string(b)
	return "Job " + id, d, nil
}

// jobOrLog serves a job's page, or with ?log its log as events.
func (s *Server) jobOrLog(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Has("log") {
		s.logStream(w, r, jobID(r))
		return
	}
	// The log and the request sit below the live content: the log grows
	// by itself, and the request never changes.
	var after template.HTML
	if _, data, err := s.jobPage(r); err == nil {
		panel, err := s.renderString("logpanel", struct{ Src string }{jobURL(jobID(r)) + "?log=1"})
		if err != nil {
			s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", err.Error())
			return
		}
		req, err := s.renderString("jobrequest", data)
		if err != nil {
			s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", err.Error())
			return
		}
		after = template.HTML(panel + req)
	}
	s.servePage(w, r, "job", s.jobPage, after)
}

// workerRow is a worker with what runs on it.
type workerRow struct {
	broker.WorkerInfo
	Attrs    []string
	Capacity string
	Jobs     []string
}

type workersData struct {
	common
	Workers []workerRow
}

func (s *Server) workersPage(r *http.Request) (string, any, error) {
	d := workersData{common: s.common()}
	onWorker := s.view.JobsOnWorker()
	for _, w := range s.view.Workers() {
		row := workerRow{WorkerInfo: w, Jobs: onWorker[w.ID]}
		for k, v := range w.Attributes {
			row.Attrs = append(row.Attrs, k+"="+v)
		}
		sort.Strings(row.Attrs)
		res := w.Resources
		row.Capacity = fmt.Sprintf("%g CPU", res.CPU)
		if res.RAMBytes > 0 {
			row.Capacity += " · " + jobwire.FormatBytes(res.RAMBytes) + " RAM"
		}
		if res.DeviceKind != "" {
			row.Capacity += fmt.Sprintf(" · %d× %s %s", res.DeviceCount, res.DeviceVariant, strings.ToUpper(res.DeviceKind))
		}
		d.Workers = append(d.Workers, row)
	}
	return "Workers", d, nil
}

type actorsData struct {
	common
	Actors []*actors.Record
	States []stateCount
	State  string
}

func (s *Server) actorsPage(r *http.Request) (string, any, error) {
	d := actorsData{common: s.common(), State: strings.ToLower(r.URL.Query().Get("state"))}
	by := s.view.ActorsByState()
	for _, st := range actorStates {
		d.States = append(d.States, stateCount{st, by[st]})
	}
	for _, a := range s.view.Actors() {
		if d.State == "" || a.State == d.State {
			d.Actors = append(d.Actors, a)
		}
	}
	return "Actors", d, nil
}

type failuresData struct {
	common
	Failures []clusterview.Failure
}

func (s *Server) failuresPage(r *http.Request) (string, any, error) {
	return "Task failures", failuresData{common: s.common(), Failures: s.view.Failures()}, nil
}
