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
