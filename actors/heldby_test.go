package actors

import (
	"testing"
	"time"
)

// The sweep decides from the actor's record whether the instance that
// serves now has a waiting call. Its host's clock may run ahead of the
// caller's: the actor's first instance still has a call sent just after
// it started, while a restarted one whose start follows the send does not.
func TestTheSweepTiesACallToTheFirstInstanceWhateverTheClocks(t *testing.T) {
	sent := time.Now()
	ahead := sent.Add(5 * time.Millisecond).UnixMilli() // the host's clock, 5 ms ahead
	first := &Future{sent: sent}
	if !first.heldBy(&Record{State: StateReady, Epoch: 1, StartedMS: ahead}) || first.epoch != 1 {
		t.Fatalf("a call to the actor's first instance, its host's clock ahead: epoch %d; want held by epoch 1", first.epoch)
	}
	restarted := &Future{sent: sent}
	if restarted.heldBy(&Record{State: StateReady, Epoch: 2, Restarts: 1, StartedMS: ahead}) {
		t.Fatal("a call sent before a restarted instance started: held; want lost")
	}
	before := &Future{sent: sent}
	if !before.heldBy(&Record{State: StateReady, Epoch: 2, Restarts: 1, StartedMS: sent.Add(-time.Second).UnixMilli()}) || before.epoch != 2 {
		t.Fatalf("a call sent after its instance started: epoch %d; want held by epoch 2", before.epoch)
	}
	if (&Future{sent: sent, epoch: 1}).heldBy(&Record{State: StateStopped, Epoch: 1}) {
		t.Fatal("a stopped instance: held; want lost")
	}
}
