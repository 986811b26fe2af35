package broker_test

import (
	"testing"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/objects"
)

// FuzzDecodeWorkerInfo: every client and worker reads FRAY_WORKERS records
// written by other processes.
func FuzzDecodeWorkerInfo(f *testing.F) {
	good, _ := objects.Marshal(broker.WorkerInfo{V: 1, ID: "w1", Pool: "default", Attributes: map[string]string{"region": "x"},
		Concurrency: 8, Handlers: []string{"fray.noop"}, Resources: broker.WorkerResources{CPU: 8, DeviceKind: "tpu", DeviceCount: 4}})
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0xa1, 0x62, 0x69, 0x64, 0x01}) // {"id": 1}
	f.Add([]byte{0xbf, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		var w broker.WorkerInfo
		if err := objects.Unmarshal(data, &w); err != nil {
			return
		}
		if _, err := objects.Marshal(w); err != nil {
			t.Fatalf("decoded record does not re-encode: %v", err)
		}
	})
}
