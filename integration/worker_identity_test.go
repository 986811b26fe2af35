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
	"github.com/frayhq/fray/jobs"
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
	url := roleBroker(t, dir, "fray")
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
		_, err = s.Get(ctx, jobs.AllocKey("wb"))
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
	out, errOut, code := runFray(t, env, time.Minute, "submit", "--name", "thief", "--constraint", "side=a", "--env-from-worker", fray.EnvPassword, "--wait", "--", "true")
	if code == 0 || !strings.Contains(out+errOut, "that is worker wa's own credential, never given to a job") {
		t.Errorf("a job asking for its worker's password: exit %d\n%s\n%s", code, out, errOut)
	}
}
