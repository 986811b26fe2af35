package main

import (
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/cluster"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/worker"
)

func TestConstraintFlagReadsEachOperator(t *testing.T) {
	cases := map[string]jobs.Constraint{
		"region=us":  {Key: "region", Op: jobs.OpEQ, Values: []string{"us"}},
		"region!=us": {Key: "region", Op: jobs.OpNE, Values: []string{"us"}},
		"zone=a,b":   {Key: "zone", Op: jobs.OpIN, Values: []string{"a", "b"}},
		"tpu-name":   {Key: "tpu-name", Op: jobs.OpEXISTS},
	}
	for in, want := range cases {
		got, err := parseConstraint(in)
		if err != nil || got.Key != want.Key || got.Op != want.Op || strings.Join(got.Values, ",") != strings.Join(want.Values, ",") {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
		}
	}
}

func TestDefaultJobNameIsAValidName(t *testing.T) {
	n := defaultJobName("/usr/bin/python3.12")
	if err := jobs.ValidName("job name", n); err != nil || !strings.HasPrefix(n, "python312-") {
		t.Fatalf("%q: %v", n, err)
	}
}

func TestSubmitWithAnInvalidFlagValueExitsTwoBeforeConnecting(t *testing.T) {
	t.Setenv("FRAY_CLUSTER_SPEC", "") // nothing may get as far as connecting
	cases := map[string][]string{
		"cpu -2 is negative":                 {"--cpu", "-2"},
		`--gpu "H100:x"`:                     {"--gpu", "H100:x"},
		`--gpu "H100:0"`:                     {"--gpu", "H100:0"},
		`--tpu "v9-99"`:                      {"--tpu", "v9-99"},
		"--tpu and --gpu exclude":            {"--tpu", "v5e-16", "--gpu", "H100"},
		`--env "NOEQ": want KEY=VALUE`:       {"--env", "NOEQ"},
		"constraint with an empty key":       {"--constraint", "=v"},
		"--constraint is empty":              {"--constraint", ""},
		`job name "a/b"`:                     {"--name", "a/b"},
		"timeout -5s is negative":            {"--timeout", "-5s"},
		"scheduling timeout -1s is negative": {"--scheduling-timeout", "-1s"},
		"max retries on failure -1":          {"--max-retries-failure", "-1"},
		"empty region":                       {"--region", ""},
	}
	for want, flags := range cases {
		args := append(append([]string{"submit"}, flags...), "--", "true")
		_, stderr, code := cli(t, args...)
		if code != 2 || !strings.Contains(stderr, want) || strings.Contains(stderr, "no cluster given") {
			t.Errorf("fray %q: exit %d, stderr %q; want exit 2 saying %q", args, code, stderr, want)
		}
	}
}

func TestSubmitWaitSaysWhyTheJobIsPendingOnceAndFailsItAtTheSchedulingTimeout(t *testing.T) {
	defer func(d time.Duration) { jobProgressEvery = d }(jobProgressEvery)
	jobProgressEvery = 100 * time.Millisecond // a heartbeat at every poll
	// One worker of slice "a": a gang of 2 on one slice waits for a second
	// worker of the slice, which never comes.
	l, err := cluster.StartLocal(frayt.Context(t, time.Minute), cluster.LocalOptions{
		Broker: broker.Options{StoreDir: t.TempDir()}, Workers: 1,
		Worker: worker.Options{Attributes: map[string]string{"tpu-name": "a"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop() })
	start := time.Now()
	out, stderr, code := cli(t, "submit", "--wait", "--nats", l.URL(), "--name", "gang", "--replicas", "2", "--group-by", "tpu-name",
		"--scheduling-timeout", "3s", "--", "true")
	t.Logf("stderr:\n%s", stderr)
	reason := "waiting for 2 workers sharing one tpu-name value; the largest group, tpu-name=a, has 1 worker"
	if code != 1 || strings.TrimSpace(out) != "/default/gang" {
		t.Fatalf("exit %d, stdout %q; want 1 and the job id", code, out)
	}
	if n := strings.Count(stderr, reason); n != 2 {
		// Once while it waits, once in the final error.
		t.Fatalf("the pending reason appears %d times, want once while waiting and once in the error", n)
	}
	if !strings.Contains(stderr, "still PENDING, replicas 0/2 running") {
		t.Fatalf("no progress while it waited")
	}
	if !strings.Contains(stderr, "ended FAILED") || !strings.Contains(stderr, "unschedulable for 3s (its scheduling timeout); last pending reason: "+reason) {
		t.Fatalf("the failure does not say it was unschedulable and why")
	}
	if waited := time.Since(start); waited < 3*time.Second {
		t.Fatalf("failed after %s, before its 3s scheduling timeout", waited)
	}
}

func TestJobStatusSaysHowLongAPendingJobHasWaitedAndItsSchedulingTimeout(t *testing.T) {
	now := time.UnixMilli(100_000)
	r := &jobs.Record{Status: jobs.StatusPending, SubmittedMS: 55_000, PendingReason: "no live workers"}
	if got, want := pendingFor(r, now), " (45s so far)"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	r.Request.SchedulingTimeout = 5 * time.Minute
	if got, want := pendingFor(r, now), " (45s so far; scheduling timeout 5m0s)"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	r.Status = jobs.StatusRunning
	if got := pendingFor(r, now); got != "" {
		t.Fatalf("a running job: %q", got)
	}
}
