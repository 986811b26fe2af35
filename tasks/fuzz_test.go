package tasks

import (
	"testing"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/objects"
)

// FuzzDecodeResult: a producer must survive any bytes on fray.results.>.
func FuzzDecodeResult(f *testing.F) {
	val, _ := objects.Marshal(42)
	frayt.SeedRecords(f, objects.Marshal,
		Result{V: taskwire.ResultVersion, ID: "t1", Value: val, Worker: "w", Attempt: 1},
		Result{V: taskwire.ResultVersion, ID: "t2", Error: &ErrorInfo{Kind: KindHandler, Fn: "f", Message: "m", Type: "*errors.errorString"}},
		Result{V: 9, ID: "t3"},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := taskwire.DecodeResult(data)
		if err != nil {
			return
		}
		if r.V != taskwire.ResultVersion {
			t.Fatalf("taskwire.DecodeResult accepted version %d", r.V)
		}
		if r.Error != nil {
			_ = remoteError(r.ID, r.Error).Error()
		}
	})
}
