package jobs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// ClientOptions configures a Client.
type ClientOptions struct {
	// Namespace of submitted jobs. Defaults to $FRAY_NAMESPACE, else
	// "default".
	Namespace string
	// Parent is the job id new jobs become children of. Defaults to
	// $FRAY_JOB_ID, set by the runner inside a job; "-" means none.
	Parent string
	// SubmitTimeout bounds the wait for a dispatcher's answer to a submit.
	// With no dispatcher running, the job is recorded PENDING directly and a
	// dispatcher picks it up when it starts. Defaults to 10 s.
	SubmitTimeout time.Duration
	// AskBackends makes the external backends the record (fray.Connect sets
	// it for a ray?/iris? spec without nats=, whose broker lives only in
	// this process): before a handle first reads its job, and before every
	// ListJobs, the dispatcher is asked to look the jobs up on its backends
	// (jobwire.SubjectFind), so jobs submitted from any process are seen. Defaults
	// to false: the broker's records are the truth.
	AskBackends bool
}

// Client submits, lists and controls jobs.
type Client struct {
	nc            *nats.Conn
	js            jetstream.JetStream
	store         *Store
	ns            string
	parent        string
	submitTimeout time.Duration
	askBackends   bool
}

// NewClient makes a jobs client on an open connection.
func NewClient(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, o ClientOptions) (*Client, error) {
	if o.Namespace == "" {
		o.Namespace = os.Getenv(EnvNamespace)
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if err := ValidName("namespace", o.Namespace); err != nil {
		return nil, err
	}
	switch o.Parent {
	case "":
		o.Parent = os.Getenv(EnvJobID)
	case "-":
		o.Parent = ""
	}
	if o.SubmitTimeout <= 0 {
		o.SubmitTimeout = 10 * time.Second
	}
	st, err := OpenStore(ctx, js)
	if err != nil {
		return nil, err
	}
	return &Client{nc: nc, js: js, store: st, ns: o.Namespace, parent: o.Parent, submitTimeout: o.SubmitTimeout, askBackends: o.AskBackends}, nil
}

// Store is the client's record store.
func (c *Client) Store() *Store { return c.store }

// Handle returns a handle on job id without checking that it exists.
func (c *Client) Handle(id string) *Handle { return &Handle{c: c, id: id} }

// ResolveID turns what a user typed into a job id: an id ("/ns/name") is
// kept, a bare name is taken in the client's namespace.
func (c *Client) ResolveID(s string) string {
	if len(s) > 0 && s[0] == '/' {
		return s
	}
	return JobID(c.ns, s)
}

// ListJobs returns the jobs that pass f. With AskBackends, the backends'
// jobs are looked up first.
func (c *Client) ListJobs(ctx context.Context, f Filter) ([]*Record, error) {
	if c.askBackends {
		if _, err := c.FindAll(ctx); err != nil {
			return nil, err
		}
	}
	return c.store.List(ctx, f)
}

// Prepare validates req, applies defaults and, inside a job, makes it a
// child that inherits the parent's namespace, environment, constraints and
// regions. It returns the id the job will have and its parent.
func (c *Client) Prepare(ctx context.Context, req *JobRequest) (id, parent string, err error) {
	req.Normalize()
	if err := req.Validate(); err != nil {
		return "", "", err
	}
	if c.parent == "" {
		return JobID(c.ns, req.Name), "", nil
	}
	p, _, err := c.store.Get(ctx, c.parent)
	if err != nil {
		return "", "", fmt.Errorf("jobs: parent job %s (from %s): %w", c.parent, EnvJobID, err)
	}
	inherit(req, &p.Request)
	return ChildID(p.ID, req.Name), p.ID, nil
}

// inherit merges the parent's environment, constraints and regions into a
// child's request; the child's own settings win.
func inherit(req, parent *JobRequest) {
	env := maps.Clone(parent.Environment.EnvVars)
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, req.Environment.EnvVars)
	if len(env) > 0 {
		req.Environment.EnvVars = env
	}
	for _, k := range parent.Environment.EnvFromWorker {
		if _, set := req.Environment.EnvVars[k]; !set && !slices.Contains(req.Environment.EnvFromWorker, k) {
			req.Environment.EnvFromWorker = append(req.Environment.EnvFromWorker, k)
		}
	}
	have := map[string]bool{}
	for _, c := range req.Constraints {
		have[c.Key] = true
	}
	for _, c := range parent.Constraints {
		if !have[c.Key] {
			req.Constraints = append(req.Constraints, c)
		}
	}
	if req.Resources.Regions == nil {
		req.Resources.Regions = parent.Resources.Regions
	}
}

// Submit starts a job and returns its handle. A dispatcher validates it
// against the backend that will run it: a refusal returns an error wrapping
// ErrRejected (and the job is recorded FAILED). A live job of the same name
// is adopted (the default) or reported as *AlreadyExistsError. opts adjust
// req first (see RequestOption).
func (c *Client) Submit(ctx context.Context, req JobRequest, opts ...RequestOption) (*Handle, error) {
	if err := req.apply(opts); err != nil {
		return nil, err
	}
	id, parent, err := c.Prepare(ctx, &req)
	if err != nil {
		return nil, err
	}
	body, err := objects.Marshal(&SubmitRequest{V: jobwire.WireVersion, ID: id, Parent: parent, Request: req})
	if err != nil {
		return nil, err
	}
	// A submit the server refuses to this user fails at once, naming both.
	gctx, unguard := broker.GuardPublish(ctx, c.nc, jobwire.SubjectSubmit, "$KV."+broker.BucketJobState+".>")
	defer unguard()
	rctx, cancel := context.WithTimeout(gctx, c.submitTimeout)
	defer cancel()
	msg, err := c.nc.RequestWithContext(rctx, jobwire.SubjectSubmit, body)
	if err != nil {
		if derr := broker.Denied(gctx, err); derr != err {
			return nil, fmt.Errorf("jobs: submit %s: %w", id, derr)
		}
	}
	var rep SubmitReply
	if err == nil {
		if err := objects.Unmarshal(msg.Data, &rep); err != nil {
			return nil, fmt.Errorf("jobs: submit %s: bad reply: %w", id, err)
		}
	}
	if errors.Is(err, nats.ErrNoResponders) || err == nil && rep.Code == jobwire.CodeUnavailable {
		// No dispatcher is running: record the job; one will place it.
		rec := NewRecord(id, parent, &req)
		_, _, adopted, err := c.store.CreateOrAdopt(gctx, rec, req.Adopt())
		err = broker.Denied(gctx, err)
		var ae *AlreadyExistsError
		if errors.As(err, &ae) {
			ae.Handle = c.Handle(id)
			return nil, ae
		}
		if err != nil {
			return nil, err
		}
		return &Handle{c: c, id: id, adopted: adopted, refreshed: true}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: submit %s: %v", ErrNoDispatcher, id, err)
	}
	switch rep.Code {
	case jobwire.CodeOK:
		return &Handle{c: c, id: id, adopted: rep.Adopted, refreshed: true}, nil
	case jobwire.CodeExists:
		return nil, &AlreadyExistsError{ID: id, Handle: c.Handle(id)}
	case jobwire.CodeInvalid:
		return nil, fmt.Errorf("%w: %s", ErrInvalid, rep.Error)
	case jobwire.CodeRejected:
		return nil, fmt.Errorf("%w: job %s: %s", ErrRejected, id, rep.Error)
	default:
		return nil, fmt.Errorf("jobs: submit %s: %s", id, rep.Error)
	}
}

// NewRecord makes the PENDING record of a new submission.
func NewRecord(id, parent string, req *JobRequest) *Record {
	ns, name, _, _ := ParseID(id)
	now := jobwire.NowMS()
	return &Record{
		V: jobwire.RecordVersion, ID: id, Name: name, Namespace: ns, Parent: parent,
		Run: nuid.Next(), Request: *req, Status: StatusPending,
		PendingReason: "waiting for a dispatcher",
		Tasks:         NewTasks(req.NumReplicas()),
		SubmittedMS:   now, UpdatedMS: now,
	}
}

// Stop asks the dispatcher to stop job id and waits until it is finished.
func (c *Client) Stop(ctx context.Context, id string, reason string) error {
	return c.stop(ctx, id, reason)
}

func (c *Client) stop(ctx context.Context, id, reason string) error {
	h := c.Handle(id)
	if err := h.refresh(ctx); err != nil {
		return err
	}
	r, _, err := c.store.Get(ctx, id)
	if err != nil {
		return err
	}
	if r.Status.Terminal() {
		return nil
	}
	b, err := objects.Marshal(&jobwire.Control{V: jobwire.WireVersion, Job: id, Op: jobwire.OpStop, Reason: reason})
	if err != nil {
		return err
	}
	gctx, unguard := broker.GuardPublish(ctx, c.nc, jobwire.ControlSubject(id))
	defer unguard()
	if _, err := c.js.Publish(gctx, jobwire.ControlSubject(id), b); err != nil {
		return fmt.Errorf("jobs: stop %s: %w", id, broker.Denied(gctx, err))
	}
	_, err = h.Wait(ctx)
	return err
}
