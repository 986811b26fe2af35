package integration

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/auth"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/tasks"
)

// exitOf waits for p to exit and returns its exit code.
func exitOf(t *testing.T, p *proc, d time.Duration) int {
	t.Helper()
	waitFor(t, d, p.name+" exits", p.Exited)
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	return 0
}

// envValue is the value of name in env (NAME=VALUE entries).
func envValue(env []string, name string) string {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v
		}
	}
	return ""
}

// A worker's credentials fix its id: fray-worker refuses another at once,
// and a worker's user may not write another worker's registry entry.
func TestAWorkerIsWhoItsCredentialsSay(t *testing.T) {
	dir := authInit(t, "--worker", "wa", "--worker", "wb", "--producer", "alice", "--producer", "jobs")
	b := roleBrokerProc(t, dir, "fray")
	url := b.URL
	wa := userEnv(t, dir, "fray-worker-wa")
	if envValue(wa, auth.EnvWorkerID) != "wa" {
		t.Fatalf("fray-worker-wa.env: %s=%q, want wa", auth.EnvWorkerID, envValue(wa, auth.EnvWorkerID))
	}
	// --id against the credentials file's FRAY_WORKER_ID: a usage mistake.
	p := start(t, "fray-worker", wa, "--nats", url, "--id", "wb", "--log-level", "warn")
	if code := exitOf(t, p, 30*time.Second); code != 2 || !strings.Contains(p.Output(), `is "wa": a worker's credentials fix its id`) {
		t.Errorf("fray-worker --id wb as wa: exit %d\n%s\nwant exit 2 naming wa's id", code, p.Output())
	}
	// Without FRAY_WORKER_ID the server's word on the user decides.
	var bare []string
	for _, kv := range wa {
		if !strings.HasPrefix(kv, auth.EnvWorkerID+"=") {
			bare = append(bare, kv)
		}
	}
	p = start(t, "fray-worker", bare, "--nats", url, "--id", "wb", "--log-level", "warn")
	if code := exitOf(t, p, 30*time.Second); code != 2 || !strings.Contains(p.Output(), "user fray-worker-wa (account fray) may not write $KV.FRAY_WORKERS.wb") || !strings.Contains(p.Output(), "--id wa") {
		t.Errorf("fray-worker --id wb with wa's credentials: exit %d\n%s\nwant exit 2 naming the user and the id it may use", code, p.Output())
	}
	// With neither, the id comes from the credentials.
	prod := userClient(t, dir, "fray-alice", url)
	start(t, "fray-worker", bare, "--nats", url, "--log-level", "warn", "--cpu", "1", "--attr", "side=a")
	waitFor(t, 30*time.Second, "worker wa registered under the id its credentials name", func() bool {
		for _, w := range prod.Workers() {
			if w.ID == "wa" {
				return true
			}
		}
		return false
	})

	// wa may not write wb's registry entry, nor delete it.
	wac := userClient(t, dir, "fray-worker-wa", url)
	ctx := frayt.Context(t, time.Minute)
	kv, err := wac.JetStream().KeyValue(ctx, broker.BucketWorkers)
	if err != nil {
		t.Fatal(err)
	}
	refused(t, wac, "fray-worker-wa", "worker wa writes wb's registry entry", func(ctx context.Context) error {
		_, err := kv.Put(ctx, "wb", []byte("forged"))
		return err
	})
	refused(t, wac, "fray-worker-wa", "worker wa deletes wb's registry entry", func(ctx context.Context) error {
		return kv.Delete(ctx, "wb")
	})
	refused(t, wac, "fray-worker-wa", "worker wa reads wb's allocation", func(ctx context.Context) error {
		s, err := wac.JetStream().KeyValue(ctx, broker.BucketJobState)
		if err != nil {
			return err
		}
		_, err = s.Get(ctx, jobwire.AllocKey("wb"))
		return err
	})

	// Job processes hold none of their worker's credentials: wa's jobs
	// get none at all, wb's those of the user its --job-env file names.
	roleWorker(t, dir, "fray", url, "wb", prod, "--attr", "side=b", "--job-env", filepath.Join(dir, "fray-jobs.env"))
	wb := userEnv(t, dir, "fray-worker-wb")
	env := userEnv(t, dir, "fray-alice", "FRAY_CLUSTER_SPEC="+url)
	for _, c := range []struct {
		side, password string
		want           []string
	}{
		{"a", envValue(wa, fray.EnvPassword), nil},
		{"b", envValue(wb, fray.EnvPassword), []string{fray.EnvUser + "=fray-jobs", fray.EnvPassword + "=" + envValue(userEnv(t, dir, "fray-jobs"), fray.EnvPassword)}},
	} {
		out, errOut, code := runFray(t, env, time.Minute, "submit", "--name", "env-"+c.side, "--constraint", "side="+c.side, "--wait", "--", "env")
		if code != 0 || !strings.Contains(out, "FRAY_JOB_ID=/default/env-"+c.side) {
			t.Fatalf("job printing its environment on side %s: exit %d\n%s\n%s", c.side, code, out, errOut)
		}
		if strings.Contains(out, c.password) || strings.Contains(out, auth.EnvWorkerID+"=") || strings.Contains(out, "@127.0.0.1") {
			t.Errorf("a job on side %s holds its worker's credentials:\n%s", c.side, out)
		}
		if c.want == nil {
			for _, name := range jobs.CredentialVars {
				if strings.Contains(out, name+"=") {
					t.Errorf("a job on side %s holds %s:\n%s", c.side, name, out)
				}
			}
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("a job on side %s lacks %s:\n%s", c.side, w, out)
			}
		}
	}

	// Worker wa reports on a job placed on wb: refused on wb's subjects,
	// dropped by the dispatcher on its own.
	if _, errOut, code := runFray(t, env, time.Minute, "submit", "--name", "on-b", "--constraint", "side=b", "--", "sleep", "600"); code != 0 {
		t.Fatalf("submit on-b: %s", errOut)
	}
	h, err := prod.Job(ctx, "/default/on-b")
	if err != nil {
		t.Fatal(err)
	}
	var r *jobs.Record
	waitFor(t, 30*time.Second, "on-b running on wb", func() bool {
		r, err = h.Info(ctx)
		return err == nil && r.Running() == 1 && r.Tasks[0].Worker == "wb"
	})
	publish := func(ctx context.Context, subj string, sender string) error {
		ev := jobwire.TaskEvent{V: jobwire.WireVersion, Job: r.ID, Run: r.Run, Task: 0, Attempt: r.Attempt, Worker: sender, Kind: jobwire.EventExited, TimeMS: jobwire.NowMS()}
		data, err := objects.Marshal(&ev)
		if err != nil {
			return err
		}
		_, err = wac.JetStream().Publish(ctx, subj, data)
		return err
	}
	refused(t, wac, "fray-worker-wa", "worker wa reports on wb's subject", func(ctx context.Context) error {
		return publish(ctx, jobwire.EventSubject("wb", r.ID), "wb")
	})
	refused(t, wac, "fray-worker-wa", "worker wa writes logs on wb's subject", func(ctx context.Context) error {
		_, err := wac.JetStream().Publish(ctx, jobwire.WorkerLogSubject(r.ID, 0, "wb"), []byte("forged"))
		return err
	})
	for _, sender := range []string{"wb", "wa"} {
		if err := publish(ctx, jobwire.EventSubject("wa", r.ID), sender); err != nil {
			t.Fatalf("worker wa publishes on its own event subject: %v", err)
		}
	}
	// The stop is consumed after the forged exits: had one counted, the
	// job would have SUCCEEDED before it.
	if _, errOut, code := runFray(t, env, time.Minute, "stop", "/default/on-b"); code != 0 {
		t.Fatalf("stop on-b: %s", errOut)
	}
	if r, err = h.Wait(ctx); err != nil || r.Status != jobs.StatusStopped {
		t.Fatalf("on-b: %v, %v; want STOPPED: wa's exits must not count", r.Status, err)
	}
	for _, want := range []string{"task event dropped: its subject names another sender", "task event dropped: the task is not placed on its sender"} {
		if !strings.Contains(b.Output(), want) {
			t.Errorf("the broker's log lacks %q:\n%s", want, b.Output())
		}
	}

	out, errOut, code := runFray(t, env, time.Minute, "submit", "--name", "thief", "--constraint", "side=a", "--env-from-worker", fray.EnvPassword, "--wait", "--", "true")
	if code == 0 || !strings.Contains(out+errOut, "that is worker wa's own credential, never given to a job") {
		t.Errorf("a job asking for its worker's password: exit %d\n%s\n%s", code, out, errOut)
	}
}

// A worker's credentials name its pool too: fray-worker serves it
// without --pool, refuses another pool at start, and its user may not
// pull another pool's tasks.
func TestAWorkerPullsOnlyThePoolItsCredentialsName(t *testing.T) {
	dir := authInit(t, "--worker", "g1@gpu", "--producer", "alice")
	url := roleBroker(t, dir, "fray")
	g1 := userEnv(t, dir, "fray-worker-g1")
	p := start(t, "fray-worker", g1, "--nats", url, "--pool", "default", "--log-level", "warn")
	if code := exitOf(t, p, 30*time.Second); code != 2 || !strings.Contains(p.Output(), "user fray-worker-g1 (account fray) may not pull pool default's tasks") || !strings.Contains(p.Output(), "--pool gpu") {
		t.Errorf("fray-worker --pool default as g1 of pool gpu: exit %d\n%s\nwant exit 2 naming the user and the pool it may serve", code, p.Output())
	}
	p = start(t, "fray-worker", g1, "--nats", url, "--log-level", "warn", "--cpu", "1")
	if line := p.waitLine("fray-worker ready", 30*time.Second); !strings.Contains(line, "id=g1 pool=gpu") {
		t.Fatalf("ready line %q, want id=g1 pool=gpu", line)
	}
	alice := userClient(t, dir, "fray-alice", url)
	ctx := frayt.Context(t, time.Minute)
	var got string
	if err := alice.Run(ctx, "fray.echo", "on gpu", tasks.Pool("gpu")).Get(ctx, &got); err != nil || got != "on gpu" {
		t.Fatalf("a task on pool gpu: %q, %v", got, err)
	}
	wc := userClient(t, dir, "fray-worker-g1", url)
	refused(t, wc, "fray-worker-g1", "worker of pool gpu pulls pool default", func(ctx context.Context) error {
		_, err := wc.NATS().RequestWithContext(ctx, "$JS.API.CONSUMER.MSG.NEXT."+broker.StreamTasks+".pool-default", []byte(`{"batch":1,"no_wait":true}`))
		return err
	})
}
