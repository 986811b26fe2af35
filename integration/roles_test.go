package integration

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/tasks"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// authInit runs fray auth init into a new directory and returns it.
func authInit(t *testing.T, args ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "auth")
	out, errOut, code := runFray(t, nil, time.Minute, append([]string{"auth", "init", "--out", dir}, args...)...)
	if code != 0 || !strings.Contains(out, "wrote "+filepath.Join(dir, "nats.conf")) {
		t.Fatalf("fray auth init: exit %d\n%s\n%s", code, out, errOut)
	}
	return dir
}

// userEnv is the environment a user's .env file gives, plus more.
func userEnv(t *testing.T, dir, user string, more ...string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, user+".env"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var env []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			env = append(env, l)
		}
	}
	return append(env, more...)
}

// roleBroker starts fray-broker on dir's nats.conf as tenant's admin.
func roleBroker(t *testing.T, dir, tenant string, args ...string) string {
	t.Helper()
	return roleBrokerProc(t, dir, tenant, args...).URL
}

// roleBrokerProc is roleBroker returning the process.
func roleBrokerProc(t *testing.T, dir, tenant string, args ...string) *brokerProc {
	t.Helper()
	return startBrokerEnv(t, userEnv(t, dir, tenant+"-admin"), "", 0, append([]string{"--config", filepath.Join(dir, "nats.conf")}, args...)...)
}

// roleWorker starts fray-worker as tenant's worker user of id (which
// fixes its id: no --id is given) and waits until c sees it.
func roleWorker(t *testing.T, dir, tenant, url, id string, c *fray.Client, args ...string) *proc {
	t.Helper()
	p := start(t, "fray-worker", userEnv(t, dir, tenant+"-worker-"+id), append([]string{"--nats", url, "--log-level", "warn", "--cpu", "1"}, args...)...)
	waitFor(t, 30*time.Second, "worker "+id+" registered", func() bool {
		for _, w := range c.Workers() {
			if w.ID == id {
				return true
			}
		}
		return false
	})
	return p
}

// userClient connects as user with the credentials of its .env file.
func userClient(t *testing.T, dir, user, url string, more ...fray.Option) *fray.Client {
	t.Helper()
	kv := map[string]string{}
	for _, l := range userEnv(t, dir, user) {
		k, v, _ := strings.Cut(l, "=")
		kv[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := []fray.Option{fray.WithoutEnvCredentials(), fray.WithUserPass(kv[fray.EnvUser], kv[fray.EnvPassword]),
		fray.WithInboxPrefix(kv[fray.EnvInbox]), fray.WithOwner(kv[fray.EnvOwner])}
	if ca := kv[fray.EnvTLSCA]; ca != "" {
		opts = append(opts, fray.WithTLS(ca, "", ""))
	}
	c, err := fray.Connect(ctx, url, append(opts, more...)...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refused runs op with a context that a permission refusal on c's
// connection ends, and checks that it is refused at once, naming user.
func refused(t *testing.T, c *fray.Client, user, what string, op func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	gctx, unguard := broker.GuardPublish(ctx, c.NATS(), ">")
	defer unguard()
	began := time.Now()
	err := broker.Denied(gctx, op(gctx))
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("%s: refused after %s, want at once", what, d)
	}
	if !errors.Is(err, fray.ErrPermissionDenied) || !strings.Contains(err.Error(), "user "+user) {
		t.Errorf("%s: %v; want a permission error naming user %s", what, err, user)
	}
}

func TestRolesDoTheirWorkAndAreRefusedTheRest(t *testing.T) {
	dir := authInit(t, "--producer", "alice", "--producer", "bob")
	url := roleBroker(t, dir, "fray")
	env := func(user string) []string { return userEnv(t, dir, user, "FRAY_CLUSTER_SPEC="+url) }
	alice := userClient(t, dir, "fray-alice", url)
	roleWorker(t, dir, "fray", url, "w1", alice)

	// The producer: a task, a job, an actor, an object.
	out, errOut, code := runFray(t, env("fray-alice"), time.Minute, "run", "fray.echo", "--arg", `{"x":1}`, "--wait")
	if code != 0 || strings.TrimSpace(out) != `{"x":1}` {
		t.Fatalf("producer runs a task: exit %d, %q, %q", code, out, errOut)
	}
	out, errOut, code = runFray(t, env("fray-alice"), time.Minute, "submit", "--name", "hello", "--wait", "--", "echo", "hi from a job")
	if code != 0 || !strings.Contains(out, "hi from a job") {
		t.Fatalf("producer submits a job: exit %d, %q, %q", code, out, errOut)
	}
	_, errOut, code = runFray(t, env("fray-alice"), time.Minute, "submit", "--name", "sleeper", "--", "sleep", "600")
	if code != 0 {
		t.Fatalf("producer submits a job: exit %d, %q", code, errOut)
	}
	ctx := frayt.Context(t, 2*time.Minute)
	h, err := alice.CreateActor(ctx, "fray.Counter", "c1", nil)
	if err != nil {
		t.Fatalf("producer creates an actor: %v", err)
	}
	var n int
	if err := h.Call(ctx, "Add", 5).Get(ctx, &n); err != nil || n != 5 {
		t.Fatalf("producer calls an actor: %d, %v", n, err)
	}
	big := strings.Repeat("x", 2<<20)
	ref, err := alice.Put(ctx, big)
	if err != nil {
		t.Fatalf("producer puts an object: %v", err)
	}
	var back string
	if err := alice.Get(ctx, ref, &back); err != nil || back != big {
		t.Fatalf("producer gets its object back: %v", err)
	}
	fut := alice.Run(ctx, "fray.echo", "alice's secret result")
	var res string
	if err := fut.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}

	// The viewer reads everything a viewer reads, and submits nothing.
	for _, args := range [][]string{{"jobs"}, {"workers"}, {"actors"}, {"logs", "/default/hello"}, {"jobs", "status", "/default/hello"}} {
		out, errOut, code := runFray(t, env("fray-viewer"), time.Minute, args...)
		if code != 0 {
			t.Errorf("viewer: fray %s: exit %d, %q", strings.Join(args, " "), code, errOut)
		}
		if args[0] == "logs" && !strings.Contains(out, "hi from a job") || args[0] == "workers" && !strings.Contains(out, "w1") {
			t.Errorf("viewer: fray %s printed %q", strings.Join(args, " "), out)
		}
	}
	for _, args := range [][]string{{"submit", "--name", "v", "--", "true"}, {"run", "fray.echo", "--arg", "1", "--wait"}, {"stop", "/default/sleeper"}} {
		began := time.Now()
		_, errOut, code := runFray(t, env("fray-viewer"), time.Minute, args...)
		if code == 0 || !strings.Contains(errOut, "permission denied: user fray-viewer") || time.Since(began) > 5*time.Second {
			t.Errorf("viewer: fray %s: exit %d after %s, %q; want refused at once naming the user", args[0], code, time.Since(began), errOut)
		}
	}
	viewer := userClient(t, dir, "fray-viewer", url)
	refused(t, viewer, "fray-viewer", "viewer creates an actor", func(ctx context.Context) error {
		_, err := viewer.CreateActor(ctx, "fray.Counter", "v1", nil)
		return err
	})
	refused(t, viewer, "fray-viewer", "viewer puts an object", func(ctx context.Context) error {
		_, err := viewer.Put(ctx, big)
		return err
	})

	// The worker's user: what the worker does, and not the rest.
	wc := userClient(t, dir, "fray-worker-w1", url)
	refused(t, wc, "fray-worker-w1", "worker submits a job", func(ctx context.Context) error {
		_, err := wc.Submit(ctx, jobs.JobRequest{Name: "sneaky", Entrypoint: jobs.Command("true")})
		return err
	})
	refused(t, wc, "fray-worker-w1", "worker writes job state", func(ctx context.Context) error {
		kv, err := wc.JetStream().KeyValue(ctx, broker.BucketJobState)
		if err != nil {
			return err
		}
		_, err = kv.Put(ctx, jobwire.JobKey("/default/hello"), []byte("forged"))
		return err
	})
	refused(t, wc, "fray-worker-w1", "worker purges a stream", func(ctx context.Context) error {
		s, err := wc.JetStream().Stream(ctx, broker.StreamTasks)
		if err != nil {
			return err
		}
		return s.Purge(ctx)
	})
	refused(t, wc, "fray-worker-w1", "worker submits a task", func(ctx context.Context) error {
		var v any
		return wc.Run(ctx, "fray.echo", 1).Get(ctx, &v)
	})

	// Results are their owner's alone: neither the worker nor another
	// producer reads alice's.
	bob := userClient(t, dir, "fray-bob", url)
	for _, other := range []struct {
		c    *fray.Client
		user string
	}{{wc, "fray-worker-w1"}, {bob, "fray-bob"}} {
		refused(t, other.c, other.user, other.user+" reads alice's result by future id", func(ctx context.Context) error {
			f, err := other.c.Future(fut.ID())
			if err != nil {
				return err
			}
			var v string
			return f.Get(ctx, &v)
		})
		refused(t, other.c, other.user, other.user+" subscribes to alice's results", func(ctx context.Context) error {
			_, err := broker.Subscribe(ctx, other.c.NATS(), broker.SubjectStoredPrefix+"fray-alice.>", func(*nats.Msg) {})
			return err
		})
		refused(t, other.c, other.user, other.user+" fetches alice's stored result", func(ctx context.Context) error {
			s, err := other.c.JetStream().Stream(ctx, broker.StreamResults)
			if err != nil {
				return err
			}
			_, err = s.GetLastMsgForSubject(ctx, taskwire.ResultSubject("fray-alice", fut.TaskID()))
			return err
		})
		refused(t, other.c, other.user, other.user+" reads the results stream with a consumer", func(ctx context.Context) error {
			_, err := other.c.JetStream().OrderedConsumer(ctx, broker.StreamResults, jetstream.OrderedConsumerConfig{})
			return err
		})
	}
	// The producer stops its job.
	if _, errOut, code := runFray(t, env("fray-alice"), time.Minute, "stop", "/default/sleeper"); code != 0 {
		t.Errorf("producer stops a job: exit %d, %q", code, errOut)
	}
	// bob still reads his own.
	var mine string
	if err := bob.Run(ctx, "fray.echo", "bob's").Get(ctx, &mine); err != nil || mine != "bob's" {
		t.Fatalf("bob's own result: %q, %v", mine, err)
	}
}

// Two tenants (NATS accounts) on one broker are two fray clusters: each
// has its own streams and buckets, served by its own fray-broker, and
// sees none of the other's workers, jobs, tasks, actors, results or
// objects.
func TestTwoTenantsOnOneBrokerSeeNothingOfEachOther(t *testing.T) {
	dir := authInit(t, "--tenant", "a", "--tenant", "b", "--worker", "wa", "--worker", "wb")
	// Both tenants' streams reserve their bytes out of one server's
	// JetStream storage, which is a share of the host's free disk: with the
	// default log reservation (8 GiB each) the test would need about 20 GB
	// free.
	const logBytes = "1073741824"
	url := roleBroker(t, dir, "a", "--log-max-bytes", logBytes)
	// Tenant b's services: a fray-broker running no server, on b's admin.
	bb := start(t, "fray-broker", userEnv(t, dir, "b-admin"), "--nats", url, "--log-level", "warn", "--log-max-bytes", logBytes)
	bb.waitLine("fray-broker ready", time.Minute)
	env := func(user string) []string { return userEnv(t, dir, user, "FRAY_CLUSTER_SPEC="+url) }
	ctx := frayt.Context(t, 2*time.Minute)
	pa, pb := userClient(t, dir, "a-producer", url), userClient(t, dir, "b-producer", url)
	roleWorker(t, dir, "a", url, "wa", pa)
	roleWorker(t, dir, "b", url, "wb", pb)
	for _, c := range []struct {
		p    *fray.Client
		self string
	}{{pa, "wa"}, {pb, "wb"}} {
		if ws := c.p.Workers(); len(ws) != 1 || ws[0].ID != c.self {
			t.Fatalf("workers seen: %+v; want only %s", ws, c.self)
		}
	}

	// Tenant a works: a task, a job, an actor, an object.
	fut := pa.Run(ctx, "fray.echo", "a's")
	var res string
	if err := fut.Get(ctx, &res); err != nil || res != "a's" {
		t.Fatalf("a's task: %q, %v", res, err)
	}
	if _, errOut, code := runFray(t, env("a-producer"), time.Minute, "submit", "--name", "ajob", "--wait", "--", "echo", "a"); code != 0 {
		t.Fatalf("a's job: %s", errOut)
	}
	if _, err := pa.CreateActor(ctx, "fray.Counter", "acounter", nil); err != nil {
		t.Fatal(err)
	}
	ref, err := pa.Put(ctx, strings.Repeat("a", 2<<20))
	if err != nil {
		t.Fatal(err)
	}

	// Tenant b sees none of it, even as its admin.
	out, _, code := runFray(t, env("b-viewer"), time.Minute, "jobs")
	if code != 0 || strings.Contains(out, "ajob") {
		t.Errorf("b's jobs list: exit %d\n%s", code, out)
	}
	out, _, code = runFray(t, env("b-viewer"), time.Minute, "actors")
	if code != 0 || strings.Contains(out, "acounter") {
		t.Errorf("b's actors list: exit %d\n%s", code, out)
	}
	badmin := userClient(t, dir, "b-admin", url)
	if _, err := badmin.Producer().Lookup(ctx, fut.ID()); !errors.Is(err, tasks.ErrNoResult) {
		t.Errorf("b's admin looks up a's result: %v; want ErrNoResult", err)
	}
	var v string
	if err := badmin.Get(ctx, ref, &v); err == nil {
		t.Errorf("b's admin got a's object")
	}
	// b's work runs on b's worker only.
	if _, errOut, code := runFray(t, env("b-producer"), time.Minute, "submit", "--name", "bjob", "--wait", "--", "echo", "b"); code != 0 {
		t.Fatalf("b's job: %s", errOut)
	}
	out, _, _ = runFray(t, env("b-viewer"), time.Minute, "jobs", "status", "/default/bjob")
	if !strings.Contains(out, "SUCCEEDED on wb") {
		t.Errorf("b's job status:\n%s\nwant it run on wb", out)
	}
	out, _, _ = runFray(t, env("a-viewer"), time.Minute, "jobs", "status", "/default/ajob")
	if !strings.Contains(out, "SUCCEEDED on wa") {
		t.Errorf("a's job status:\n%s\nwant it run on wa", out)
	}
}
