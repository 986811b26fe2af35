package taskwire

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/frayhq/fray/objects"
)

// codecTasks and codecResults span the fields' shapes: absent, small, at
// each integer width's edges, negative, empty and long strings.
func codecTasks() []Task {
	raw, _ := objects.Marshal(map[string]any{"n": 1, "s": "x"})
	ref := objects.Ref{V: 1, Bucket: "FRAY_OBJECTS", Digest: "sha256:00", Size: 3}
	long := string(bytes.Repeat([]byte("x"), 300))
	return []Task{
		{},
		{V: TaskVersion, Fn: "fray.noop", Arg: []byte{0xf6}, SubmittedMS: 1765000000000},
		{V: TaskVersionV1, ID: "W1dtIxqFtC1nDEwpDgq3SQ", Owner: "OWNERj3kdkAQSgJ8c4XBs", Fn: "fray.echo", Arg: raw,
			TimeoutMS: 5000, Retries: 2, BackoffMS: 100, MaxDeliveries: 5, SubmittedMS: 1765000000000},
		{V: TaskVersionV1, ID: "a", Owner: "o", Fn: "f", Arg: []byte{0x40}, MaxDeliveries: 5, SubmittedMS: 1},
		{V: 23, ID: long, Owner: "ünïcode", Fn: long[:24], Arg: bytes.Repeat([]byte{7}, 70000), TimeoutMS: math.MaxInt64,
			Retries: -1, BackoffMS: math.MinInt64, MaxDeliveries: 255, SubmittedMS: -24},
		{V: 24, Retries: 256, BackoffMS: 65535, TimeoutMS: 65536, MaxDeliveries: math.MaxUint32, SubmittedMS: math.MaxUint32 + 1},
		{V: TaskVersion, ID: "r", Owner: "o", Fn: "f", ArgRef: &ref, SubmittedMS: 2},
	}
}

func codecResults() []Result {
	val, _ := objects.Marshal([]any{1, 2.5, "three"})
	ref := objects.Ref{V: 1, Bucket: "FRAY_OBJECTS", Digest: "sha256:00", Size: 3}
	return []Result{
		{},
		{V: ResultVersion, ID: "W1dtIxqFtC1nDEwpDgq3SQ", Value: val, Worker: "host-1", Attempt: 1, StartedMS: 1765000000100, FinishedMS: 1765000000200},
		{V: ResultVersion, ID: "t", Value: []byte{0xf6}, Fn: "fray.noop", Pool: "default", SubmittedMS: 1765000000000, Worker: "w",
			Attempt: 3, StartedMS: 1765000000001, FinishedMS: 1765000000002},
		{V: -5, ID: string(bytes.Repeat([]byte("é"), 200)), Attempt: math.MinInt64, StartedMS: -1, FinishedMS: math.MaxInt64},
		{V: ResultVersion, ID: "t", ValueRef: &ref, Worker: "w"},
		{V: ResultVersion, ID: "t", Error: &ErrorInfo{Kind: "handler", Message: "boom", Exc: []byte{1}}, Fn: "f"},
	}
}

// The hand-written encoders write exactly what objects.Marshal writes,
// and the decoders read it back to the same record objects.Unmarshal does.
func TestCodecMatchesObjectsCodec(t *testing.T) {
	for i, task := range codecTasks() {
		checkTaskCodec(t, i, &task)
	}
	for i, res := range codecResults() {
		checkResultCodec(t, i, &res)
	}
}

func checkTaskCodec(t *testing.T, i int, task *Task) {
	t.Helper()
	checkCodec(t, "task", i, task, EncodeTask, unmarshalTask)
}

func checkResultCodec(t *testing.T, i int, res *Result) {
	t.Helper()
	checkCodec(t, "result", i, res, EncodeResult, func(b []byte, r *Result) error { return unmarshalResult(b, r, nil) })
}

// checkCodec checks that encode writes objects.Marshal's bytes for v, and
// that decode reads them as objects.Unmarshal does.
func checkCodec[T any](t *testing.T, what string, i int, v *T, encode func(*T) ([]byte, error), decode func([]byte, *T) error) {
	t.Helper()
	want, err := objects.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := encode(v)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s %d: hand-written encoding %x, %v; objects.Marshal %x", what, i, got, err, want)
	}
	var fast, slow T
	ferr, serr := decode(want, &fast), objects.Unmarshal(want, &slow)
	// Both refuse what objects.Marshal writes but objects.Unmarshal does
	// not read (strings that are not UTF-8).
	if (ferr == nil) != (serr == nil) || ferr == nil && !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%s %d: hand-written decoder %+v, %v; objects.Unmarshal %+v, %v", what, i, fast, ferr, slow, serr)
	}
}

// The fast paths take fray's own records, not only fall back: a record
// the producer or a worker writes decodes without the generic decoder.
func TestCodecFastPathReadsFraysRecords(t *testing.T) {
	for i, task := range codecTasks()[1:6] {
		data, _ := EncodeTask(&task)
		var got Task
		if !fastRecord(data, &got, nil, nil) {
			t.Errorf("task %d (%x) left to the generic decoder", i+1, data)
		}
	}
	for i, res := range codecResults()[1:4] {
		data, _ := EncodeResult(&res)
		var got Result
		if !fastRecord(data, nil, &got, nil) {
			t.Errorf("result %d (%x) left to the generic decoder", i+1, data)
		}
	}
}

// vectorMsgID is the Nats-Msg-Id of the version-2 task vectors' messages.
const vectorMsgID = "OWNERj3kdkAQSgJ8c4XBs.W1dtIxqFtC1nDEwpDgq3SQ"

// The wire vectors decode and re-encode to their own bytes through the
// hand-written codecs too.
func TestCodecReadsAndWritesWireVectors(t *testing.T) {
	for _, name := range []string{"task", "task_arg_ref", "task_v1"} {
		data := readVector(t, name)
		task, err := DecodeTask(data, vectorMsgID)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if task.V == TaskVersion {
			// The worker's view: the task named by its Nats-Msg-Id. The
			// record names neither.
			if task.Owner != "OWNERj3kdkAQSgJ8c4XBs" || task.ID != "W1dtIxqFtC1nDEwpDgq3SQ" {
				t.Fatalf("%s: owner %q, id %q: not those of Nats-Msg-Id %q", name, task.Owner, task.ID, vectorMsgID)
			}
			if name == "task_arg_ref" && task.MaxDeliveries != DefaultMaxDeliveries {
				t.Fatalf("%s: max_deliveries left out reads as %d, want %d", name, task.MaxDeliveries, DefaultMaxDeliveries)
			}
			task.Owner, task.ID = "", ""
			if name == "task_arg_ref" {
				task.MaxDeliveries = 0
			}
		}
		if again, err := EncodeTask(task); err != nil || !bytes.Equal(again, data) {
			t.Fatalf("%s: re-encoded as %x, %v; want %x", name, again, err, data)
		}
	}
	for _, name := range []string{"result", "result_value_ref", "result_error"} {
		data := readVector(t, name)
		res, err := DecodeResult(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if again, err := EncodeResult(res); err != nil || !bytes.Equal(again, data) {
			t.Fatalf("%s: re-encoded as %x, %v; want %x", name, again, err, data)
		}
	}
}

func readVector(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "wire", name+".cbor"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// FuzzTaskCodec: for any field values, EncodeTask writes objects.Marshal's
// bytes and both decoders agree on them.
func FuzzTaskCodec(f *testing.F) {
	for _, task := range codecTasks() {
		f.Add(task.V, task.ID, task.Owner, task.Fn, task.Arg, task.TimeoutMS, task.Retries, task.BackoffMS, task.MaxDeliveries, task.SubmittedMS)
	}
	f.Fuzz(func(t *testing.T, v int, id, owner, fn string, arg []byte, timeout int64, retries int, backoff int64, maxDel int, submitted int64) {
		task := Task{V: v, ID: id, Owner: owner, Fn: fn, Arg: arg, TimeoutMS: timeout, Retries: retries, BackoffMS: backoff,
			MaxDeliveries: maxDel, SubmittedMS: submitted}
		checkTaskCodec(t, 0, &task)
	})
}

// FuzzResultCodec is FuzzTaskCodec for results.
func FuzzResultCodec(f *testing.F) {
	for _, r := range codecResults() {
		f.Add(r.V, r.ID, r.Value, r.Fn, r.Pool, r.SubmittedMS, r.Worker, r.Attempt, r.StartedMS, r.FinishedMS)
	}
	f.Fuzz(func(t *testing.T, v int, id string, value []byte, fn, pool string, submitted int64, worker string, attempt int, started, finished int64) {
		res := Result{V: v, ID: id, Value: value, Fn: fn, Pool: pool, SubmittedMS: submitted, Worker: worker, Attempt: attempt,
			StartedMS: started, FinishedMS: finished}
		checkResultCodec(t, 0, &res)
	})
}

// FuzzCodecDecodersAgree: on any bytes, the hand-written decoders and
// objects.Unmarshal both fail, or yield the same record.
func FuzzCodecDecodersAgree(f *testing.F) {
	for _, task := range codecTasks() {
		b, _ := objects.Marshal(&task)
		f.Add(b)
	}
	for _, r := range codecResults() {
		b, _ := objects.Marshal(&r)
		f.Add(b)
	}
	f.Add([]byte{0xa1, 0x61, 0x76, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // {"v": 2^64-1}
	f.Add([]byte{0xa2, 0x61, 0x76, 0x01, 0x61, 0x76, 0x01})                               // {"v": 1, "v": 1}
	f.Add([]byte{0xa1, 0x61, 0x56, 0x01})                                                 // {"V": 1}
	f.Add([]byte{0xa1, 0x62, 0x69, 0x64, 0x62, 0xff, 0xfe})                               // {"id": invalid UTF-8}
	f.Add([]byte{0xa1, 0x63, 0x61, 0x72, 0x67, 0x40})                                     // {"arg": h''}
	f.Add([]byte{0xa1, 0x61, 0x76, 0x18, 0x01})                                           // {"v": 1} not in shortest form
	f.Fuzz(func(t *testing.T, data []byte) {
		var fastT, slowT Task
		ferr, serr := unmarshalTask(data, &fastT), objects.Unmarshal(data, &slowT)
		if (ferr == nil) != (serr == nil) || ferr == nil && !reflect.DeepEqual(fastT, slowT) {
			t.Fatalf("task %x: unmarshalTask = %+v, %v; objects.Unmarshal = %+v, %v", data, fastT, ferr, slowT, serr)
		}
		var fastR, slowR Result
		ferr, serr = unmarshalResult(data, &fastR, nil), objects.Unmarshal(data, &slowR)
		if (ferr == nil) != (serr == nil) || ferr == nil && !reflect.DeepEqual(fastR, slowR) {
			t.Fatalf("result %x: unmarshalResult = %+v, %v; objects.Unmarshal = %+v, %v", data, fastR, ferr, slowR, serr)
		}
		// Expecting the record's own text values changes nothing.
		var likeR Result
		if ferr == nil && (unmarshalResult(data, &likeR, &slowR) != nil || !reflect.DeepEqual(likeR, slowR)) {
			t.Fatalf("result %x expecting its own values: %+v; objects.Unmarshal = %+v", data, likeR, slowR)
		}
	})
}

// A result whose text values are the ones expected decodes to the same
// record without an allocation (a producer's common case), and one whose
// values differ from those expected still reads its own.
func TestAnExpectedResultDecodesWithoutAllocating(t *testing.T) {
	res := Result{V: ResultVersion, ID: "W1dtIxqFtC1nDEwpDgq3SQ", Fn: "fray.noop", Pool: "default", Worker: "host-1",
		Value: []byte{0xf6}, Attempt: 1, SubmittedMS: 1765000000000, StartedMS: 1765000000001, FinishedMS: 1765000000002}
	data, err := EncodeResult(&res)
	if err != nil {
		t.Fatal(err)
	}
	like := res
	var got Result
	allocs := testing.AllocsPerRun(100, func() {
		got = Result{}
		if err := DecodeResultInto(data, &got, &like); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 || !reflect.DeepEqual(got, res) {
		t.Fatalf("expected result: %+v in %.0f allocations, want %+v in none", got, allocs, res)
	}
	other := Result{ID: "other", Fn: "fray.echo", Pool: "gpu", Worker: "host-2"}
	got = Result{}
	if err := DecodeResultInto(data, &got, &other); err != nil || !reflect.DeepEqual(got, res) {
		t.Fatalf("unexpected values: %+v, %v; want %+v", got, err, res)
	}
}
