package taskwire

import (
	"math"
	"slices"
	"unicode/utf8"

	"github.com/frayhq/fray/objects"
)

// Hand-written CBOR for the task and result records, the four codec calls
// every task makes. The encoders write exactly the bytes objects.Marshal
// writes (core deterministic: map keys ordered by their encoding, so
// shorter keys first; integers in their shortest form; empty omitempty
// fields left out). The decoders read the records fray writes and yield
// what objects.Unmarshal yields; anything else (an unknown or nested key,
// a tag, an indefinite length, a null, a duplicate key, a value out of
// range) makes them hand the bytes to objects.Unmarshal, so the two can
// never disagree (codec_test.go checks both ways, and fuzzes it).
//
// Records carrying an object reference or an error are rare and go through
// objects.Marshal and objects.Unmarshal whole.

// CBOR major types, shifted into the initial byte.
const (
	cborUint  = 0 << 5
	cborNeg   = 1 << 5
	cborBytes = 2 << 5
	cborText  = 3 << 5
	cborMap   = 5 << 5
)

// appendHead appends a CBOR head: major type and argument, shortest form.
func appendHead(b []byte, major byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(b, major|byte(n))
	case n <= math.MaxUint8:
		return append(b, major|24, byte(n))
	case n <= math.MaxUint16:
		return append(b, major|25, byte(n>>8), byte(n))
	case n <= math.MaxUint32:
		return append(b, major|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, major|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendInt(b []byte, v int64) []byte {
	if v < 0 {
		return appendHead(b, cborNeg, uint64(-(v + 1)))
	}
	return appendHead(b, cborUint, uint64(v))
}

func appendText(b []byte, s string) []byte {
	return append(appendHead(b, cborText, uint64(len(s))), s...)
}

func appendBytes(b []byte, p []byte) []byte {
	return append(appendHead(b, cborBytes, uint64(len(p))), p...)
}

// Map keys, encoded (all are under 24 bytes: one head byte).
func key(s string) string { return string(appendText(nil, s)) }

var (
	keyV             = key("v")
	keyFn            = key("fn")
	keyID            = key("id")
	keyArg           = key("arg")
	keyPool          = key("pool")
	keyOwner         = key("owner")
	keyValue         = key("value")
	keyWorker        = key("worker")
	keyAttempt       = key("attempt")
	keyRetries       = key("retries")
	keyBackoffMS     = key("backoff_ms")
	keyStartedMS     = key("started_ms")
	keyTimeoutMS     = key("timeout_ms")
	keyFinishedMS    = key("finished_ms")
	keySubmittedMS   = key("submitted_ms")
	keyMaxDeliveries = key("max_deliveries")
)

// EncodeTask is objects.Marshal(t), faster: the producer's encoder.
func EncodeTask(t *Task) ([]byte, error) { return AppendTask(nil, t) }

// AppendTask appends EncodeTask(t) to b (or, for a task with an object
// reference, returns objects.Marshal's own slice).
func AppendTask(b []byte, t *Task) ([]byte, error) {
	if t.ArgRef != nil {
		c := *t // only this copy escapes: the caller's task can stay on its stack
		return objects.Marshal(&c)
	}
	n := 5 // v, id, owner, fn, submitted_ms
	for _, set := range [...]bool{len(t.Arg) > 0, t.TimeoutMS != 0, t.Retries != 0, t.BackoffMS != 0, t.MaxDeliveries != 0} {
		if set {
			n++
		}
	}
	b = slices.Grow(b, 96+len(t.ID)+len(t.Owner)+len(t.Fn)+len(t.Arg))
	b = appendHead(b, cborMap, uint64(n))
	b = appendInt(append(b, keyV...), int64(t.V))
	b = appendText(append(b, keyFn...), t.Fn)
	b = appendText(append(b, keyID...), t.ID)
	if len(t.Arg) > 0 {
		b = appendBytes(append(b, keyArg...), t.Arg)
	}
	b = appendText(append(b, keyOwner...), t.Owner)
	if t.Retries != 0 {
		b = appendInt(append(b, keyRetries...), int64(t.Retries))
	}
	if t.BackoffMS != 0 {
		b = appendInt(append(b, keyBackoffMS...), t.BackoffMS)
	}
	if t.TimeoutMS != 0 {
		b = appendInt(append(b, keyTimeoutMS...), t.TimeoutMS)
	}
	b = appendInt(append(b, keySubmittedMS...), t.SubmittedMS)
	if t.MaxDeliveries != 0 {
		b = appendInt(append(b, keyMaxDeliveries...), int64(t.MaxDeliveries))
	}
	return b, nil
}

// EncodeResult is objects.Marshal(r), faster: the worker's encoder.
func EncodeResult(r *Result) ([]byte, error) {
	if r.ValueRef != nil || r.Error != nil {
		c := *r // only this copy escapes
		return objects.Marshal(&c)
	}
	n := 2 // v, id
	for _, set := range [...]bool{r.Fn != "", r.Pool != "", len(r.Value) > 0, r.Worker != "", r.Attempt != 0,
		r.StartedMS != 0, r.FinishedMS != 0, r.SubmittedMS != 0} {
		if set {
			n++
		}
	}
	b := make([]byte, 0, 112+len(r.ID)+len(r.Fn)+len(r.Pool)+len(r.Worker)+len(r.Value))
	b = appendHead(b, cborMap, uint64(n))
	b = appendInt(append(b, keyV...), int64(r.V))
	if r.Fn != "" {
		b = appendText(append(b, keyFn...), r.Fn)
	}
	b = appendText(append(b, keyID...), r.ID)
	if r.Pool != "" {
		b = appendText(append(b, keyPool...), r.Pool)
	}
	if len(r.Value) > 0 {
		b = appendBytes(append(b, keyValue...), r.Value)
	}
	if r.Worker != "" {
		b = appendText(append(b, keyWorker...), r.Worker)
	}
	if r.Attempt != 0 {
		b = appendInt(append(b, keyAttempt...), int64(r.Attempt))
	}
	if r.StartedMS != 0 {
		b = appendInt(append(b, keyStartedMS...), r.StartedMS)
	}
	if r.FinishedMS != 0 {
		b = appendInt(append(b, keyFinishedMS...), r.FinishedMS)
	}
	if r.SubmittedMS != 0 {
		b = appendInt(append(b, keySubmittedMS...), r.SubmittedMS)
	}
	return b, nil
}

// recordReader walks one CBOR map of text keys to integers, text and byte
// strings. Text values are substrings of s, one copy of the record, so a
// record's strings cost one allocation.
type recordReader struct {
	s   string
	pos int
}

// head reads a definite head of the given major type: its argument.
func (r *recordReader) head(major byte) (uint64, bool) {
	if r.pos >= len(r.s) {
		return 0, false
	}
	c := r.s[r.pos]
	if c&0xe0 != major {
		return 0, false
	}
	info, p := c&0x1f, r.pos+1
	var n uint64
	switch {
	case info < 24:
		n = uint64(info)
	case info <= 27:
		size := 1 << (info - 24)
		if len(r.s)-p < size {
			return 0, false
		}
		for i := range size {
			n = n<<8 | uint64(r.s[p+i])
		}
		p += size
	default:
		return 0, false // reserved, or an indefinite length
	}
	r.pos = p
	return n, true
}

// str reads a text or byte string (by major type) as a substring of s.
func (r *recordReader) str(major byte) (string, bool) {
	n, ok := r.head(major)
	if !ok || n > uint64(len(r.s)-r.pos) {
		return "", false
	}
	v := r.s[r.pos : r.pos+int(n)]
	r.pos += int(n)
	if major == cborText && !utf8.ValidString(v) {
		return "", false
	}
	return v, true
}

// int reads an integer that fits in int64.
func (r *recordReader) int() (int64, bool) {
	if r.pos >= len(r.s) {
		return 0, false
	}
	major := r.s[r.pos] & 0xe0
	if major != cborUint && major != cborNeg {
		return 0, false
	}
	n, ok := r.head(major)
	if !ok || n > math.MaxInt64 {
		return 0, false
	}
	if major == cborNeg {
		return -1 - int64(n), true
	}
	return int64(n), true
}

// fields reads the map's head and calls field for each key, whose value
// field must read; a key seen twice, or field reporting false, is false.
func (r *recordReader) fields(field func(key string) (bit uint32, ok bool)) bool {
	n, ok := r.head(cborMap)
	if !ok || n > 32 {
		return false
	}
	var seen uint32
	for range n {
		k, ok := r.str(cborText)
		if !ok {
			return false
		}
		bit, ok := field(k)
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
	}
	return r.pos == len(r.s)
}

// unmarshal is objects.Unmarshal(data, v) into a zero v, read by field
// (which reads key's value into v and names the key's bit) when it can.
func unmarshal[T any](data []byte, v *T, field func(r *recordReader, v *T, key string) (bit uint32, ok bool)) error {
	if fast(data, v, field) {
		return nil
	}
	var zero T
	*v = zero
	return objects.Unmarshal(data, v)
}

// fast reads data into v with field; false leaves it to objects.Unmarshal.
func fast[T any](data []byte, v *T, field func(r *recordReader, v *T, key string) (bit uint32, ok bool)) bool {
	r := recordReader{s: string(data)}
	return r.fields(func(k string) (uint32, bool) { return field(&r, v, k) })
}

func unmarshalTask(data []byte, t *Task) error { return unmarshal(data, t, taskField) }

func unmarshalResult(data []byte, res *Result) error { return unmarshal(data, res, resultField) }

// taskField reads the value of a task record's key.
func taskField(r *recordReader, t *Task, k string) (bit uint32, ok bool) {
	var n int64
	var b string
	switch k {
	case "v":
		n, ok = r.int()
		t.V = int(n)
		return 1 << 0, ok
	case "id":
		t.ID, ok = r.str(cborText)
		return 1 << 1, ok
	case "owner":
		t.Owner, ok = r.str(cborText)
		return 1 << 2, ok
	case "fn":
		t.Fn, ok = r.str(cborText)
		return 1 << 3, ok
	case "arg":
		b, ok = r.str(cborBytes)
		t.Arg = []byte(b)
		return 1 << 4, ok
	case "timeout_ms":
		t.TimeoutMS, ok = r.int()
		return 1 << 5, ok
	case "retries":
		n, ok = r.int()
		t.Retries = int(n)
		return 1 << 6, ok
	case "backoff_ms":
		t.BackoffMS, ok = r.int()
		return 1 << 7, ok
	case "max_deliveries":
		n, ok = r.int()
		t.MaxDeliveries = int(n)
		return 1 << 8, ok
	case "submitted_ms":
		t.SubmittedMS, ok = r.int()
		return 1 << 9, ok
	}
	return 0, false // arg_ref, or a key objects.Unmarshal matches loosely or ignores
}

// resultField reads the value of a result record's key.
func resultField(r *recordReader, res *Result, k string) (bit uint32, ok bool) {
	var n int64
	var b string
	switch k {
	case "v":
		n, ok = r.int()
		res.V = int(n)
		return 1 << 0, ok
	case "id":
		res.ID, ok = r.str(cborText)
		return 1 << 1, ok
	case "value":
		b, ok = r.str(cborBytes)
		res.Value = []byte(b)
		return 1 << 2, ok
	case "fn":
		res.Fn, ok = r.str(cborText)
		return 1 << 3, ok
	case "pool":
		res.Pool, ok = r.str(cborText)
		return 1 << 4, ok
	case "worker":
		res.Worker, ok = r.str(cborText)
		return 1 << 5, ok
	case "attempt":
		n, ok = r.int()
		res.Attempt = int(n)
		return 1 << 6, ok
	case "started_ms":
		res.StartedMS, ok = r.int()
		return 1 << 7, ok
	case "finished_ms":
		res.FinishedMS, ok = r.int()
		return 1 << 8, ok
	case "submitted_ms":
		res.SubmittedMS, ok = r.int()
		return 1 << 9, ok
	}
	return 0, false // value_ref, error, or a key objects.Unmarshal matches loosely or ignores
}
