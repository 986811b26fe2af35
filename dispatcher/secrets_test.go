package dispatcher_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/frayhq/fray/dispatcher"
	"github.com/frayhq/fray/jobs"
)

// A job asking for variables with EnvFromWorker gets them from the
// worker's secret file, or else its environment, and the values are stored
// nowhere: not in the job record a viewer reads.
func TestEnvFromWorkerFillsSecretsThatTheJobRecordNeverHolds(t *testing.T) {
	t.Setenv("FRAY_TEST_FROM_ENV", "env-value")
	secret := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secret, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 2, nil, jobs.RunnerOptions{Secrets: map[string]string{"API_TOKEN": secret}})
	req := sh("secretive", `echo "token=$API_TOKEN env=$FRAY_TEST_FROM_ENV"`)
	req.Environment.EnvFromWorker = []string{"API_TOKEN", "FRAY_TEST_FROM_ENV"}
	h := c.submit(req)
	r := c.wait(h)
	if r.Status != jobs.StatusSucceeded {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	lines, err := h.Logs(c.ctx, 0)
	if err != nil || len(lines) != 1 || lines[0].Text != "token=s3cret-token env=env-value" {
		t.Fatalf("logs %+v (%v); want the secret from the file and the variable from the worker's environment", lines, err)
	}
	e, err := c.js.Stream(c.ctx, "KV_"+"FRAY_JOB_STATE")
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= e.CachedInfo().State.LastSeq; seq++ {
		m, err := e.GetMsg(c.ctx, seq)
		if err == nil && strings.Contains(string(m.Data), "s3cret-token") {
			t.Fatalf("the secret is stored in %s", m.Subject)
		}
	}
}

func TestEnvFromWorkerThatTheWorkerLacksFailsTheJobNamingTheVariable(t *testing.T) {
	c := newCluster(t, dispatcher.Options{})
	c.addWorker("w1", 2, nil)
	req := sh("nosecret", `echo should not run`)
	req.Environment.EnvFromWorker = []string{"FRAY_TEST_NO_SUCH_SECRET"}
	r := c.wait(c.submit(req))
	if r.Status != jobs.StatusFailed || !strings.Contains(r.Error, "env_from_worker FRAY_TEST_NO_SUCH_SECRET: worker w1 has no --secret") {
		t.Fatalf("status %s error %q; want FAILED naming the variable and the worker", r.Status, r.Error)
	}
}
