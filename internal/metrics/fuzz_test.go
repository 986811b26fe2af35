package metrics

import (
	"testing"

	"github.com/frayhq/fray/internal/clusterview"
	"github.com/frayhq/fray/internal/taskwire"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/tasks"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// The broker's metrics read every task and result on the wire: whatever
// bytes arrive, they count or skip them, never panic.
func FuzzBrokerMetricsReadAnyTaskOrResult(f *testing.F) {
	task, _ := objects.Marshal(taskwire.Task{V: 1, ID: "t", Owner: "o", Fn: "fn", SubmittedMS: 1})
	res, _ := objects.Marshal(tasks.Result{V: 1, ID: "t", Fn: "fn", Pool: "p", Attempt: 3, SubmittedMS: 5, StartedMS: 2, FinishedMS: 1,
		Error: &tasks.ErrorInfo{Kind: "handler", Message: "m"}})
	f.Add(task)
	f.Add(res)
	f.Add([]byte{0xbf})
	f.Add([]byte{})
	b := NewBroker()
	b.Register(prometheus.NewRegistry(), clusterview.New(clusterview.Options{}))
	f.Fuzz(func(t *testing.T, data []byte) {
		b.onTask(&nats.Msg{Subject: "fray.tasks.p", Data: data, Header: nats.Header{}})
		var r clusterview.Result
		if objects.Unmarshal(data, &r) == nil {
			b.onResult(&r)
		}
	})
}
