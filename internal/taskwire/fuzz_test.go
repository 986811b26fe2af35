package taskwire

import (
	"testing"

	"github.com/frayhq/fray/objects"
)

// FuzzDecodeTask: a worker must survive any bytes on fray.tasks.<pool>.
func FuzzDecodeTask(f *testing.F) {
	raw, _ := objects.Marshal([2]int{1, 2})
	ref := objects.Ref{V: 1, Bucket: "FRAY_OBJECTS", Digest: "sha256:00", Size: 3}
	for _, rec := range []Task{
		{V: TaskVersion, Fn: "add", Arg: raw},
		{V: TaskVersion, Fn: "len", ArgRef: &ref, TimeoutMS: 100, Retries: 2, BackoffMS: 10, MaxDeliveries: 2},
		{V: TaskVersion, ID: "t3", Owner: "o1", Fn: "x"},
		{V: TaskVersionV1, ID: "t1", Owner: "o1", Fn: "add", Arg: raw, MaxDeliveries: 5},
		{V: 3, Fn: "x"},
	} {
		data, err := objects.Marshal(&rec)
		if err != nil {
			f.Fatal(err)
		}
		for _, id := range []string{"o1.t1", "t1", "o1.t1~7", "", ".t", "o.", "o.t.u", "o t.u"} {
			f.Add(data, id)
		}
	}
	for _, data := range [][]byte{{}, {0xff, 0x00, 0x13}, {0x9f, 0x9f, 0x9f, 0x9f}} {
		f.Add(data, "o1.t1")
	}
	f.Fuzz(func(t *testing.T, data []byte, msgID string) {
		task, err := DecodeTask(data, msgID)
		if err != nil {
			return
		}
		if task.ID == "" || task.Fn == "" || !ValidToken(task.Owner) || !ValidToken(task.ID) && task.V == TaskVersion ||
			task.V != TaskVersion && task.V != TaskVersionV1 || task.V == TaskVersion && task.MaxDeliveries == 0 {
			t.Fatalf("DecodeTask accepted an invalid record: %+v", task)
		}
		// What decodes re-encodes (as its producer wrote it: a version-2
		// record without the names its Nats-Msg-Id gives) and decodes to
		// the same record.
		wrote := *task
		if wrote.V == TaskVersion {
			wrote.ID, wrote.Owner = "", ""
		}
		again, err := objects.Marshal(&wrote)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeTask(again, msgID)
		if err != nil {
			t.Fatalf("re-encoded task does not decode: %v", err)
		}
		if back.ID != task.ID || back.Owner != task.Owner || back.MaxDeliveries != task.MaxDeliveries {
			t.Fatalf("re-encoded task decodes as %+v, was %+v", back, task)
		}
	})
}

// A worker names a task by its message's Nats-Msg-Id (version 2) or its
// record (version 1); the two versions' records say the same otherwise,
// and a record of either that names the task the other way is refused.
func TestDecodeTaskNamesTheTaskByVersion(t *testing.T) {
	v2, _ := EncodeTask(&Task{V: TaskVersion, Fn: "f", SubmittedMS: 1})
	v1, _ := EncodeTask(&Task{V: TaskVersionV1, ID: "t1", Owner: "o1", Fn: "f", SubmittedMS: 1})
	v2named, _ := EncodeTask(&Task{V: TaskVersion, ID: "t1", Owner: "o1", Fn: "f", SubmittedMS: 1})
	v3, _ := EncodeTask(&Task{V: 3, Fn: "f", SubmittedMS: 1})
	v2negative, _ := EncodeTask(&Task{V: TaskVersion, Fn: "f", MaxDeliveries: -1, SubmittedMS: 1})
	v1spaced, _ := EncodeTask(&Task{V: TaskVersionV1, ID: "t 1", Owner: "o1", Fn: "f", SubmittedMS: 1})
	for _, c := range []struct {
		data             []byte
		msgID, owner, id string
		maxDeliveries    int
		wantErr          bool
	}{
		{data: v2, msgID: "o1.t1", owner: "o1", id: "t1", maxDeliveries: DefaultMaxDeliveries},
		{data: v2, msgID: TaskMsgName("o1.t1~42", true), owner: "o1", id: "t1", maxDeliveries: DefaultMaxDeliveries}, // a worker's copy
		{data: v2, msgID: "o~1.t~1", owner: "o~1", id: "t~1", maxDeliveries: DefaultMaxDeliveries},                   // '~' is a token's character
		{data: v2, msgID: "t1", wantErr: true},                                                                       // no owner
		{data: v2, msgID: "", wantErr: true},
		{data: v2, msgID: "o1.t 1", wantErr: true},
		{data: v1, msgID: "t1", owner: "o1", id: "t1"}, // version 1: no bound unless the record sets one
		{data: v1, msgID: "whatever", owner: "o1", id: "t1"},
		{data: v2named, msgID: "o1.t1", wantErr: true},
		{data: v3, msgID: "o1.t1", wantErr: true},
		{data: v2negative, msgID: "o1.t1", wantErr: true}, // no unbounded setting in version 2
		{data: v1spaced, msgID: "t1", wantErr: true},      // no result subject could name it
	} {
		task, err := DecodeTask(c.data, c.msgID)
		if c.wantErr {
			if err == nil {
				t.Errorf("%x with Nats-Msg-Id %q: decoded as %+v, want an error", c.data, c.msgID, task)
			}
			continue
		}
		if err != nil || task.Owner != c.owner || task.ID != c.id || task.MaxDeliveries != c.maxDeliveries {
			t.Errorf("%x with Nats-Msg-Id %q: %+v, %v; want owner %q, id %q, max_deliveries %d",
				c.data, c.msgID, task, err, c.owner, c.id, c.maxDeliveries)
		}
	}
}

// A task's name is its message's whole Nats-Msg-Id, but for the
// "~<stream-seq>" that ends a worker's copy's: owners and task ids are
// tokens, which may hold '~' themselves.
func TestTaskMsgNameDropsOnlyTheSuffixOfACopy(t *testing.T) {
	for _, c := range []struct {
		msgID  string
		copied bool
		want   string
	}{
		{"o.t", false, "o.t"},
		{"o.t~7", false, "o.t~7"}, // a task id "t~7", not a copy
		{"o.t~7", true, "o.t"},
		{"o~x.t~1~7", true, "o~x.t~1"}, // a copy's copy has one suffix, the last '~'
		{"t1~7", true, "t1"},           // version 1
		{"o.t", true, "o.t"},
		{"", true, ""},
	} {
		if got := TaskMsgName(c.msgID, c.copied); got != c.want {
			t.Errorf("TaskMsgName(%q, %v) = %q, want %q", c.msgID, c.copied, got, c.want)
		}
	}
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
