package bench

import (
	"context"
	"crypto/sha256"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/frayhq/fray/objects"
)

func TestPatternReaderIsDeterministicAndSized(t *testing.T) {
	sum := func() ([32]byte, int64) {
		h := sha256.New()
		n, err := io.Copy(h, NewPatternReader(1<<20+3, 7))
		if err != nil {
			t.Fatal(err)
		}
		var s [32]byte
		copy(s[:], h.Sum(nil))
		return s, n
	}
	a, n := sum()
	b, _ := sum()
	if n != 1<<20+3 || a != b {
		t.Fatalf("n=%d equal=%v", n, a == b)
	}
}

// TestObjectsPutsAndGetsVerifiedBytes runs the benchmark at 64 MiB and
// checks that the value streams: the Go heap (client and embedded server)
// never holds anything near the whole value. Set
// FRAY_BENCH_OBJECTS_SIZE (bytes) to run it at another size, and
// FRAY_BENCH_OBJECTS_CHUNK / FRAY_BENCH_OBJECTS_WINDOW (bytes) to tune; run
// one configuration per process, since peak RSS is per process.
func TestObjectsPutsAndGetsVerifiedBytes(t *testing.T) {
	size := int64(64 << 20)
	if s := os.Getenv("FRAY_BENCH_OBJECTS_SIZE"); s != "" {
		var err error
		if size, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var so objects.Options
	so.ChunkSize, _ = strconv.Atoi(os.Getenv("FRAY_BENCH_OBJECTS_CHUNK"))
	so.WindowBytes, _ = strconv.Atoi(os.Getenv("FRAY_BENCH_OBJECTS_WINDOW"))
	res, err := objectsWith(ctx, size, t.TempDir(), so)
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes != size || res.MBPerS <= 0 || res.PeakRSSMB <= 0 || res.GoHeapLiveMB <= 0 {
		t.Fatalf("implausible result %+v", res)
	}
	if limit := 48.0; size >= 64<<20 && res.GoHeapLiveMB > limit {
		t.Errorf("live Go heap reached %.1f MiB for a %d MiB value; want under %.0f MiB (bounded by the window, not the value)", res.GoHeapLiveMB, size>>20, limit)
	}
	t.Logf("chunk %d window %d: %s", so.ChunkSize, so.WindowBytes, res)
}
