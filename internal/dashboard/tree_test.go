package dashboard

import (
	"testing"

	"github.com/frayhq/fray/jobs"
)

func TestJobListPutsChildrenUnderTheirParent(t *testing.T) {
	rec := func(id, parent string, submitted int64) *jobs.Record {
		return &jobs.Record{ID: id, Parent: parent, SubmittedMS: submitted}
	}
	// Newest first, as the view lists them.
	recs := []*jobs.Record{
		rec("/ns/b", "", 50),
		rec("/ns/a/c2", "/ns/a", 40),
		rec("/ns/x/orphan", "/ns/x", 35), // its parent is filtered out: a root
		rec("/ns/a/c1/g", "/ns/a/c1", 30),
		rec("/ns/a/c1", "/ns/a", 20),
		rec("/ns/a", "", 10),
	}
	var got []string
	var depth []int
	for _, r := range tree(recs) {
		got = append(got, r.ID)
		depth = append(depth, r.Depth)
	}
	want := []string{"/ns/b", "/ns/x/orphan", "/ns/a", "/ns/a/c1", "/ns/a/c1/g", "/ns/a/c2"}
	wantDepth := []int{0, 0, 0, 1, 2, 1}
	if len(got) != len(want) {
		t.Fatalf("tree: %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] || depth[i] != wantDepth[i] {
			t.Fatalf("tree: %v at depths %v, want %v at depths %v", got, depth, want, wantDepth)
		}
	}
}
