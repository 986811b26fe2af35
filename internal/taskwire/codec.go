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
	n := 3 // v, fn, submitted_ms
	for _, set := range [...]bool{t.ID != "", t.Owner != "", len(t.Arg) > 0, t.TimeoutMS != 0, t.Retries != 0, t.BackoffMS != 0, t.MaxDeliveries != 0} {
		if set {
			n++
		}
	}
	b = slices.Grow(b, 96+len(t.ID)+len(t.Owner)+len(t.Fn)+len(t.Arg))
	b = appendHead(b, cborMap, uint64(n))
	b = appendInt(append(b, keyV...), int64(t.V))
	b = appendText(append(b, keyFn...), t.Fn)
	if t.ID != "" {
		b = appendText(append(b, keyID...), t.ID)
	}
	if len(t.Arg) > 0 {
		b = appendBytes(append(b, keyArg...), t.Arg)
	}
	if t.Owner != "" {
		b = appendText(append(b, keyOwner...), t.Owner)
	}
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
func EncodeResult(r *Result) ([]byte, error) { return AppendResult(nil, r) }

// AppendResult appends EncodeResult(r) to b (or, for a result with an
// object reference or an error, returns objects.Marshal's own slice).
func AppendResult(b []byte, r *Result) ([]byte, error) {
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
	b = slices.Grow(b, 112+len(r.ID)+len(r.Fn)+len(r.Pool)+len(r.Worker)+len(r.Value))
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
// strings. Byte values are subslices of b (capacity clipped), not copies:
// a decoded record's byte values alias the bytes it was decoded from. A
// text value equal to the one the reader expects for its field is that
// string; the others are substrings of one copy of the record, made at the
// first of them, so a record's strings cost one allocation, or none when
// all were expected.
type recordReader struct {
	b    []byte
	pos  int
	like *Result // a result's expected text values (see DecodeResultInto)
	s    string  // b as a string, once a text value was not expected
}

// noResult expects nothing.
var noResult = &Result{}

// head reads a definite head of the given major type: its argument.
func (r *recordReader) head(major byte) (uint64, bool) {
	if r.pos >= len(r.b) {
		return 0, false
	}
	c := r.b[r.pos]
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
		if len(r.b)-p < size {
			return 0, false
		}
		for i := range size {
			n = n<<8 | uint64(r.b[p+i])
		}
		p += size
	default:
		return 0, false // reserved, or an indefinite length
	}
	r.pos = p
	return n, true
}

// raw reads a text or byte string (by major type): where it starts and
// ends in b.
func (r *recordReader) raw(major byte) (start, end int, ok bool) {
	n, ok := r.head(major)
	if !ok || n > uint64(len(r.b)-r.pos) {
		return 0, 0, false
	}
	start, end = r.pos, r.pos+int(n)
	r.pos = end
	return start, end, true
}

// span is raw, and a text string must be UTF-8.
func (r *recordReader) span(major byte) (start, end int, ok bool) {
	start, end, ok = r.raw(major)
	if ok && major == cborText && !utf8.Valid(r.b[start:end]) {
		return 0, 0, false
	}
	return start, end, ok
}

// key reads a map key, a text string, as a subslice of b. It is not
// checked for UTF-8: a field function knows only ASCII keys, and refuses
// any other, which leaves the record to objects.Unmarshal.
func (r *recordReader) key() ([]byte, bool) {
	start, end, ok := r.raw(cborText)
	return r.b[start:end], ok
}

// text reads a text string: want when equal to it, else a substring of
// the record's copy.
func (r *recordReader) text(want string) (string, bool) {
	start, end, ok := r.span(cborText)
	if !ok {
		return "", false
	}
	if want != "" && string(r.b[start:end]) == want {
		return want, true
	}
	if r.s == "" {
		r.s = string(r.b)
	}
	return r.s[start:end], true
}

// bytes reads a byte string as a subslice of b.
func (r *recordReader) bytes() ([]byte, bool) {
	start, end, ok := r.span(cborBytes)
	return r.b[start:end:end], ok
}

// int reads an integer that fits in int64.
func (r *recordReader) int() (int64, bool) {
	if r.pos >= len(r.b) {
		return 0, false
	}
	major := r.b[r.pos] & 0xe0
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

// entries reads the map's head: its number of entries.
func (r *recordReader) entries() (uint64, bool) {
	n, ok := r.head(cborMap)
	return n, ok && n <= 32
}

// fastRecord reads a map of entries by key into t or, if t is nil, res:
// a key seen twice, a key or value the record's field function refuses,
// or bytes left over leave the record to objects.Unmarshal (false). The
// field functions are called directly: a call through a func value would
// move the reader and the record to the heap.
func fastRecord(data []byte, t *Task, res, like *Result) bool {
	if like == nil {
		like = noResult
	}
	r := recordReader{b: data, like: like}
	n, ok := r.entries()
	var seen uint32
	for ; ok && n > 0; n-- {
		var k []byte
		var bit uint32
		if k, ok = r.key(); ok && t != nil {
			bit, ok = taskField(&r, t, k)
		} else if ok {
			bit, ok = resultField(&r, res, k)
		}
		ok = ok && seen&bit == 0
		seen |= bit
	}
	return ok && r.pos == len(r.b)
}

// unmarshalTask is objects.Unmarshal(data, t) into a zero t.
func unmarshalTask(data []byte, t *Task) error {
	if fastRecord(data, t, nil, nil) {
		return nil
	}
	*t = Task{}
	return objects.Unmarshal(data, t)
}

// unmarshalResult is objects.Unmarshal(data, res) into a zero res, like
// its expected text values (see DecodeResultInto).
func unmarshalResult(data []byte, res *Result, like *Result) error {
	if fastRecord(data, nil, res, like) {
		return nil
	}
	*res = Result{}
	return objects.Unmarshal(data, res)
}

// taskField reads the value of a task record's key.
func taskField(r *recordReader, t *Task, k []byte) (bit uint32, ok bool) {
	var n int64
	switch string(k) {
	case "v":
		n, ok = r.int()
		t.V = int(n)
		return 1 << 0, ok
	case "id":
		t.ID, ok = r.text("")
		return 1 << 1, ok
	case "owner":
		t.Owner, ok = r.text("")
		return 1 << 2, ok
	case "fn":
		t.Fn, ok = r.text("")
		return 1 << 3, ok
	case "arg":
		t.Arg, ok = r.bytes()
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
func resultField(r *recordReader, res *Result, k []byte) (bit uint32, ok bool) {
	var n int64
	switch string(k) {
	case "v":
		n, ok = r.int()
		res.V = int(n)
		return 1 << 0, ok
	case "id":
		res.ID, ok = r.text(r.like.ID)
		return 1 << 1, ok
	case "value":
		res.Value, ok = r.bytes()
		return 1 << 2, ok
	case "fn":
		res.Fn, ok = r.text(r.like.Fn)
		return 1 << 3, ok
	case "pool":
		res.Pool, ok = r.text(r.like.Pool)
		return 1 << 4, ok
	case "worker":
		res.Worker, ok = r.text(r.like.Worker)
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
