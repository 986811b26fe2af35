package main

import (
	"strings"
	"testing"

	"github.com/frayhq/fray/jobs"
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
		"cpu -2 is negative":           {"--cpu", "-2"},
		`--gpu "H100:x"`:               {"--gpu", "H100:x"},
		`--gpu "H100:0"`:               {"--gpu", "H100:0"},
		`--tpu "v9-99"`:                {"--tpu", "v9-99"},
		"--tpu and --gpu exclude":      {"--tpu", "v5e-16", "--gpu", "H100"},
		`--env "NOEQ": want KEY=VALUE`: {"--env", "NOEQ"},
		"constraint with an empty key": {"--constraint", "=v"},
		"--constraint is empty":        {"--constraint", ""},
		`job name "a/b"`:               {"--name", "a/b"},
		"timeout -5s is negative":      {"--timeout", "-5s"},
		"max retries on failure -1":    {"--max-retries-failure", "-1"},
		"empty region":                 {"--region", ""},
	}
	for want, flags := range cases {
		args := append(append([]string{"submit"}, flags...), "--", "true")
		_, stderr, code := cli(t, args...)
		if code != 2 || !strings.Contains(stderr, want) || strings.Contains(stderr, "no cluster given") {
			t.Errorf("fray %q: exit %d, stderr %q; want exit 2 saying %q", args, code, stderr, want)
		}
	}
}
