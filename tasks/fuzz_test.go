package tasks

import (
	"testing"

	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/objects"
)

func seedRecords(f *testing.F, recs ...any) {
	for _, r := range recs {
		b, err := objects.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0x00, 0x13})
	f.Add([]byte{0xa1, 0x61, 0x76, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // {"v": huge}
	f.Add([]byte{0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f})                         // nested indefinite arrays
}

// FuzzDecodeResult: a producer must survive any bytes on fray.results.>.
func FuzzDecodeResult(f *testing.F) {
	val, _ := objects.Marshal(42)
	seedRecords(f,
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
