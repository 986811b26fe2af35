package taskwire

import (
	"testing"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/objects"
)

// FuzzDecodeTask: a worker must survive any bytes on fray.tasks.<pool>.
func FuzzDecodeTask(f *testing.F) {
	raw, _ := objects.Marshal([2]int{1, 2})
	ref := objects.Ref{V: 1, Bucket: "FRAY_OBJECTS", Digest: "sha256:00", Size: 3}
	frayt.SeedRecords(f, objects.Marshal,
		Task{V: TaskVersion, ID: "t1", Owner: "o1", Fn: "add", Arg: raw, MaxDeliveries: 5},
		Task{V: TaskVersion, ID: "t2", Owner: "o1", Fn: "len", ArgRef: &ref, TimeoutMS: 100, Retries: 2, BackoffMS: 10},
		Task{V: 2, ID: "t3", Owner: "o1", Fn: "x"},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		task, err := DecodeTask(data)
		if err != nil {
			return
		}
		if task.ID == "" || task.Fn == "" || !ValidToken(task.Owner) || task.V != TaskVersion {
			t.Fatalf("DecodeTask accepted an invalid record: %+v", task)
		}
		// What decodes re-encodes and decodes to the same record.
		again, err := objects.Marshal(task)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeTask(again); err != nil {
			t.Fatalf("re-encoded task does not decode: %v", err)
		}
	})
}

// FuzzParseFutureID: ids come from users and other processes.
func FuzzParseFutureID(f *testing.F) {
	for _, s := range []string{"owner.task", "", ".", "a.b.c", "a b.c", "x.*", "o.>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		owner, id, err := ParseFutureID(s)
		if err != nil {
			return
		}
		if FutureID(owner, id) != s || !ValidToken(owner) || !ValidToken(id) {
			t.Fatalf("ParseFutureID(%q) = %q, %q", s, owner, id)
		}
	})
}
