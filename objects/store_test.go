package objects_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go/jetstream"
)

type sample struct {
	Name   string            `cbor:"name"`
	Counts map[string]int    `cbor:"counts"`
	Blob   []byte            `cbor:"blob"`
	When   time.Time         `cbor:"when"`
	Nested *sample           `cbor:"nested,omitempty"`
	Tags   map[string]string `cbor:"tags,omitempty"`
}

func TestPutThenGetRoundTripsValuesOfSeveralTypes(t *testing.T) {
	e := newEnv(t, objects.Options{ChunkSize: 4096})
	when := time.Date(2026, 11, 26, 1, 2, 3, 4, time.UTC)
	cases := []struct {
		name string
		in   any
		out  func() any // a pointer to decode into
	}{
		{"string", "hello, fray", func() any { return new(string) }},
		{"int", int64(-42), func() any { return new(int64) }},
		{"float", 3.25, func() any { return new(float64) }},
		{"slice", []int{1, 2, 3}, func() any { return new([]int) }},
		{"map", map[string]any{"a": uint64(1), "b": "two"}, func() any { return new(map[string]any) }},
		{"struct", sample{Name: "s", Counts: map[string]int{"x": 1}, Blob: []byte{0, 1}, When: when,
			Nested: &sample{Name: "inner", When: when}}, func() any { return new(sample) }},
		{"multi-chunk struct", sample{Name: "big", Blob: pattern(50_000, 1), When: when}, func() any { return new(sample) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ref, err := e.st.Put(e.ctx, c.in)
			if err != nil {
				t.Fatal(err)
			}
			if err := ref.Validate(); err != nil {
				t.Fatalf("put returned an invalid ref %v: %v", ref, err)
			}
			out := c.out()
			if err := e.st.Get(e.ctx, ref, out); err != nil {
				t.Fatal(err)
			}
			if got := reflect.ValueOf(out).Elem().Interface(); !reflect.DeepEqual(got, c.in) {
				t.Fatalf("got %#v, want %#v", got, c.in)
			}
		})
	}
}

func TestRefNamesTheSHA256OfTheBytes(t *testing.T) {
	e := newEnv(t, objects.Options{})
	b := []byte("abc")
	ref, err := e.st.PutBytes(e.ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	want := objects.Ref{V: 1, Bucket: broker.BucketObjects, Size: 3,
		Digest: "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}
	if ref != want {
		t.Fatalf("ref %+v, want %+v", ref, want)
	}
	infos := e.liveObjects(t)
	if len(infos) != 1 || infos[0].Name != want.Digest {
		t.Fatalf("bucket holds %d objects, want one named %s", len(infos), want.Digest)
	}
}

func TestSameBytesPutTwiceAreStoredOnce(t *testing.T) {
	e := newEnv(t, objects.Options{ChunkSize: 4096})
	b := pattern(100_000, 2)
	var refs []objects.Ref
	for i := range 4 {
		var ref objects.Ref
		var err error
		if i%2 == 0 {
			ref, err = e.st.PutBytes(e.ctx, b)
		} else {
			ref, err = e.st.PutReader(e.ctx, bytes.NewReader(b))
		}
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
	}
	for _, r := range refs[1:] {
		if r != refs[0] {
			t.Fatalf("refs differ: %v vs %v", r, refs[0])
		}
	}
	if infos := e.liveObjects(t); len(infos) != 1 {
		t.Fatalf("bucket holds %d objects, want 1", len(infos))
	}
	if n, want := e.chunkMsgs(t), uint64(25); n != want { // 100,000 / 4096 rounded up
		t.Fatalf("bucket holds %d chunk messages, want %d (one copy)", n, want)
	}
}

func TestPutReaderAndGetReaderStreamAMultiChunkValue(t *testing.T) {
	e := newEnv(t, objects.Options{ChunkSize: 4096, WindowBytes: 16384})
	b := pattern(1<<20+17, 3)
	// A reader that returns short reads exercises chunk assembly.
	ref, err := e.st.PutReader(e.ctx, io.MultiReader(bytes.NewReader(b[:7]), iotestHalfReader{bytes.NewReader(b[7:])}))
	if err != nil {
		t.Fatal(err)
	}
	if ref.Size != int64(len(b)) {
		t.Fatalf("size %d, want %d", ref.Size, len(b))
	}
	rc, err := e.st.GetReader(e.ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(iotestHalfReader{rc})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b) {
		t.Fatal("streamed bytes differ")
	}
	if infos := e.liveObjects(t); len(infos) != 1 || infos[0].Chunks != 257 {
		t.Fatalf("objects %v, want one of 257 chunks", infos)
	}
}

// iotestHalfReader reads at most half of what is asked (at least one byte).
type iotestHalfReader struct{ r io.Reader }

func (h iotestHalfReader) Read(p []byte) (int, error) {
	return h.r.Read(p[:(len(p)+1)/2])
}

func TestEmptyValueRoundTrips(t *testing.T) {
	e := newEnv(t, objects.Options{})
	ref, err := e.st.PutReader(e.ctx, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.st.GetBytes(e.ctx, ref)
	if err != nil || len(got) != 0 || ref.Size != 0 {
		t.Fatalf("got %q, %v, ref %v", got, err, ref)
	}
}

func TestGetOfMissingRefIsErrNotFound(t *testing.T) {
	e := newEnv(t, objects.Options{})
	ref := objects.Ref{V: 1, Bucket: broker.BucketObjects, Size: 3,
		Digest: "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}
	var s string
	if err := e.st.Get(e.ctx, ref, &s); !errors.Is(err, objects.ErrNotFound) {
		t.Fatalf("Get: %v, want ErrNotFound", err)
	}
	if _, err := e.st.GetReader(e.ctx, ref); !errors.Is(err, objects.ErrNotFound) {
		t.Fatalf("GetReader: %v, want ErrNotFound", err)
	}
	if err := e.st.Delete(e.ctx, ref); !errors.Is(err, objects.ErrNotFound) {
		t.Fatalf("Delete: %v, want ErrNotFound", err)
	}
}

func TestDeleteRemovesObjectAndItsChunks(t *testing.T) {
	e := newEnv(t, objects.Options{ChunkSize: 1024})
	b := pattern(10_000, 4)
	ref, err := e.st.PutBytes(e.ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.Delete(e.ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.GetBytes(e.ctx, ref); !errors.Is(err, objects.ErrNotFound) {
		t.Fatalf("get after delete: %v, want ErrNotFound", err)
	}
	if err := e.st.Delete(e.ctx, ref); !errors.Is(err, objects.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	if n := e.chunkMsgs(t); n != 0 {
		t.Fatalf("%d chunk messages left after delete", n)
	}
	if len(e.liveObjects(t)) != 0 {
		t.Fatal("object still listed after delete")
	}
	// The same bytes can be stored again.
	if _, err := e.st.PutReader(e.ctx, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if got, err := e.st.GetBytes(e.ctx, ref); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("get after re-put: %v", err)
	}
}

func TestValueOverMaxValueSizeIsErrTooLargeAndLeavesNothing(t *testing.T) {
	e := newEnv(t, objects.Options{MaxValueSize: 5000, ChunkSize: 1024})
	b := pattern(5001, 5)
	_, err := e.st.PutBytes(e.ctx, b)
	if !errors.Is(err, objects.ErrTooLarge) || !strings.Contains(err.Error(), "5000") {
		t.Fatalf("PutBytes: %v, want ErrTooLarge naming the 5000-byte limit", err)
	}
	_, err = e.st.PutReader(e.ctx, bytes.NewReader(b))
	if !errors.Is(err, objects.ErrTooLarge) || !strings.Contains(err.Error(), "5000") {
		t.Fatalf("PutReader: %v, want ErrTooLarge naming the 5000-byte limit", err)
	}
	if _, err := e.st.Put(e.ctx, b); !errors.Is(err, objects.ErrTooLarge) {
		t.Fatalf("Put: %v, want ErrTooLarge", err)
	}
	if n := e.chunkMsgs(t); n != 0 {
		t.Fatalf("%d chunk messages left by refused puts", n)
	}
	if _, err := e.st.PutBytes(e.ctx, b[:5000]); err != nil {
		t.Fatalf("a value at the limit: %v", err)
	}
	// A store with a lower limit refuses to load the object whole.
	small, err := objects.New(e.ctx, e.js, objects.Options{MaxValueSize: 4000})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := e.st.PutBytes(e.ctx, b[:4500])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := small.GetBytes(e.ctx, ref); !errors.Is(err, objects.ErrTooLarge) {
		t.Fatalf("GetBytes over the limit: %v, want ErrTooLarge", err)
	}
}

func TestConcurrentIdenticalPutsStoreOneCopy(t *testing.T) {
	e := newEnv(t, objects.Options{ChunkSize: 2048})
	b := pattern(64_000, 6)
	const n = 8
	refs := make([]objects.Ref, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if i%2 == 0 {
				refs[i], errs[i] = e.st.PutReader(e.ctx, bytes.NewReader(b))
			} else {
				refs[i], errs[i] = e.st.PutBytes(e.ctx, b)
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("put %d: %v", i, errs[i])
		}
		if refs[i] != refs[0] {
			t.Fatalf("put %d: ref %v, want %v", i, refs[i], refs[0])
		}
	}
	if infos := e.liveObjects(t); len(infos) != 1 {
		t.Fatalf("bucket holds %d objects, want 1", len(infos))
	}
	if got, want := e.chunkMsgs(t), uint64(32); got != want { // 64,000 / 2048 rounded up
		t.Fatalf("bucket holds %d chunk messages, want %d: losers left orphans", got, want)
	}
	if got, err := e.st.GetBytes(e.ctx, refs[0]); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("get: %v", err)
	}
}

func TestGetOfExpiredObjectIsErrNotFound(t *testing.T) {
	e := newEnv(t, objects.Options{ChunkSize: 1024}, broker.ProvisionOptions{ObjectTTL: time.Second})
	if e.st.TTL() != time.Second {
		t.Fatalf("store TTL %s, want the bucket's 1s", e.st.TTL())
	}
	ref, err := e.st.PutBytes(e.ctx, pattern(5000, 7))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.GetBytes(e.ctx, ref); err != nil {
		t.Fatalf("get before expiry: %v", err)
	}
	frayt.Eventually(t, 10*time.Second, "object expires", func() bool {
		_, err := e.st.GetBytes(e.ctx, ref)
		if err != nil && !errors.Is(err, objects.ErrNotFound) {
			t.Fatalf("get while expiring: %v, want the bytes or ErrNotFound", err)
		}
		return errors.Is(err, objects.ErrNotFound)
	})
}

func TestPutRewritesACopyOlderThanHalfTheTTL(t *testing.T) {
	e := newEnv(t, objects.Options{}, broker.ProvisionOptions{ObjectTTL: 2 * time.Second})
	b := pattern(3000, 8)
	ref, err := e.st.PutBytes(e.ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	first := e.liveObjects(t)[0].NUID
	put := time.Now()
	frayt.Eventually(t, 5*time.Second, "half the TTL passes", func() bool { return time.Since(put) > 1100*time.Millisecond })
	if _, err := e.st.PutBytes(e.ctx, b); err != nil {
		t.Fatal(err)
	}
	if infos := e.liveObjects(t); len(infos) != 1 || infos[0].NUID == first {
		t.Fatalf("objects %v: want one, rewritten", infos)
	}
	// The rewritten copy outlives the first one's expiry.
	frayt.Eventually(t, 5*time.Second, "the first copy's TTL passes", func() bool { return time.Since(put) > 2500*time.Millisecond })
	if _, err := e.st.GetBytes(e.ctx, ref); err != nil {
		t.Fatalf("get of the rewritten copy: %v", err)
	}
}

func TestGetDetectsBytesThatDoNotMatchTheirDigest(t *testing.T) {
	// One chunk (read by direct get) and many (read through a consumer).
	for _, size := range []int{23, 20 * 1024} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			e := newEnv(t, objects.Options{ChunkSize: 1024})
			good := pattern(size, 14)
			ref, err := e.st.PutBytes(e.ctx, good)
			if err != nil {
				t.Fatal(err)
			}
			// Rewrite the object's chunks with one byte flipped, as a faulty
			// writer might.
			obs, err := e.js.ObjectStore(e.ctx, e.st.Bucket())
			if err != nil {
				t.Fatal(err)
			}
			info, err := obs.GetInfo(e.ctx, ref.Digest)
			if err != nil {
				t.Fatal(err)
			}
			chunks := "$O." + e.st.Bucket() + ".C." + info.NUID
			s, _ := e.js.Stream(e.ctx, "OBJ_"+e.st.Bucket())
			if err := s.Purge(e.ctx, jetstream.WithPurgeSubject(chunks)); err != nil {
				t.Fatal(err)
			}
			bad := bytes.Clone(good)
			bad[len(bad)-1] ^= 1
			for c := range slices.Chunk(bad, 1024) {
				if _, err := e.js.Publish(e.ctx, chunks, c); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := e.st.GetBytes(e.ctx, ref); !errors.Is(err, objects.ErrCorrupt) {
				t.Fatalf("get: %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestObjectsAreReadableByNATSObjectStoreClients(t *testing.T) {
	e := newEnv(t, objects.Options{ChunkSize: 1024})
	b := pattern(10_000, 9)
	ref, err := e.st.PutReader(e.ctx, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	obs, err := e.js.ObjectStore(e.ctx, e.st.Bucket())
	if err != nil {
		t.Fatal(err)
	}
	got, err := obs.GetBytes(e.ctx, ref.Digest)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("nats.go GetBytes: %v", err)
	}
	// And the other way: an object written by nats.go under its digest name.
	c := pattern(300_000, 10)
	ref2, err := e.st.PutBytes(e.ctx, c) // learn the digest
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.Delete(e.ctx, ref2); err != nil {
		t.Fatal(err)
	}
	if _, err := obs.PutBytes(e.ctx, ref2.Digest, c); err != nil {
		t.Fatal(err)
	}
	if got, err := e.st.GetBytes(e.ctx, ref2); err != nil || !bytes.Equal(got, c) {
		t.Fatalf("get of a nats.go-written object: %v", err)
	}
}

func TestGetReaderCloseReleasesTheServerConsumer(t *testing.T) {
	e := newEnv(t, objects.Options{ChunkSize: 1024, WindowBytes: 2048})
	ref, err := e.st.PutBytes(e.ctx, pattern(100_000, 11))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := e.st.GetReader(e.ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Read(make([]byte, 1)); err == nil {
		t.Fatal("read after close succeeded")
	}
	frayt.Eventually(t, 5*time.Second, "consumer deleted", func() bool { return e.consumers(t) == 0 })
}

func TestCancelledPutLeavesNoChunks(t *testing.T) {
	e := newEnv(t, objects.Options{ChunkSize: 1024})
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	r := &cancelAfter{r: bytes.NewReader(pattern(100_000, 12)), n: 50_000, cancel: cancel}
	if _, err := e.st.PutReader(ctx, r); err == nil {
		t.Fatal("put with a cancelled context succeeded")
	}
	if n := e.chunkMsgs(t); n != 0 {
		t.Fatalf("%d chunk messages left by a cancelled put", n)
	}
}

// cancelAfter cancels after n bytes have been read.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= n; c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestReaderErrorAbortsPutAndLeavesNoChunks(t *testing.T) {
	e := newEnv(t, objects.Options{ChunkSize: 1024})
	boom := errors.New("boom")
	_, err := e.st.PutReader(e.ctx, io.MultiReader(bytes.NewReader(pattern(10_000, 13)), errReader{boom}))
	if !errors.Is(err, boom) {
		t.Fatalf("put: %v, want the reader's error", err)
	}
	if n := e.chunkMsgs(t); n != 0 {
		t.Fatalf("%d chunk messages left by a failed put", n)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestRefsOfAnotherBucketOrMalformedAreErrBadRef(t *testing.T) {
	e := newEnv(t, objects.Options{})
	good, err := e.st.PutBytes(e.ctx, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	other := good
	other.Bucket = "ELSEWHERE"
	malformed := good
	malformed.Digest = "md5:abc"
	for _, ref := range []objects.Ref{other, malformed, {}} {
		if _, err := e.st.GetBytes(e.ctx, ref); !errors.Is(err, objects.ErrBadRef) {
			t.Errorf("get %v: %v, want ErrBadRef", ref, err)
		}
	}
}

func TestNewFailsClearlyWhenTheBucketIsMissing(t *testing.T) {
	srv := frayt.Server(t)
	_, js := frayt.Connect(t, srv.ClientURL())
	_, err := objects.New(frayt.Context(t, 10*time.Second), js, objects.Options{Bucket: "NOPE"})
	if !errors.Is(err, jetstream.ErrBucketNotFound) || !strings.Contains(err.Error(), "broker.Provision") {
		t.Fatalf("New: %v, want ErrBucketNotFound mentioning broker.Provision", err)
	}
}

func TestNewValidatesOptionsAndAppliesDefaults(t *testing.T) {
	e := newEnv(t, objects.Options{})
	if e.st.InlineThreshold() != 256<<10 || e.st.Bucket() != broker.BucketObjects {
		t.Fatalf("defaults: inline %d, bucket %s", e.st.InlineThreshold(), e.st.Bucket())
	}
	for _, o := range []objects.Options{
		{InlineThreshold: -1}, {MaxValueSize: -1}, {ChunkSize: 10}, {WindowBytes: -1}, {Bucket: "bad name"},
	} {
		if _, err := objects.New(e.ctx, e.js, o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}
