package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ObjectsResult is the outcome of one Objects run.
type ObjectsResult struct {
	// Bytes is the size of the object put and got.
	Bytes int64 `json:"bytes"`
	// MBPerS is the put+get throughput: 2×Bytes over the combined put and
	// get time, in MB (10^6 bytes) per second.
	MBPerS float64 `json:"mb_per_s"`
	// PutMBPerS and GetMBPerS are the throughputs of each half.
	PutMBPerS float64 `json:"put_mb_per_s"`
	GetMBPerS float64 `json:"get_mb_per_s"`
	// PeakRSSMB is the process's peak resident set (VmHWM, MiB) during the
	// run, embedded nats-server included.
	PeakRSSMB float64 `json:"peak_rss_mb"`
	// PutPeakRSSMB and GetPeakRSSMB are the peaks of each half (when the
	// peak counter can be reset between them).
	PutPeakRSSMB float64 `json:"put_peak_rss_mb"`
	GetPeakRSSMB float64 `json:"get_peak_rss_mb"`
	// BaseRSSMB is the resident set (VmRSS, MiB) after the broker started,
	// before the put.
	BaseRSSMB float64 `json:"base_rss_mb"`
	// PeakRSSReset tells whether the kernel's peak counter was reset at the
	// start of the run (/proc/self/clear_refs); when false, PeakRSSMB is the
	// whole process's peak.
	PeakRSSReset bool `json:"peak_rss_reset"`
	// GoHeapLiveMB is the largest Go heap live after a GC (MiB) and
	// GoHeapGoalMB the largest heap goal the GC pacer set, sampled during
	// the run: RSS above the live heap is garbage awaiting collection
	// (GOGC) and runtime overhead.
	GoHeapLiveMB float64 `json:"go_heap_live_mb"`
	GoHeapGoalMB float64 `json:"go_heap_goal_mb"`
	// Digest is the object's "sha256:<hex>" digest.
	Digest string `json:"digest"`
}

// String renders r for humans.
func (r ObjectsResult) String() string {
	return fmt.Sprintf("objects: %d bytes put+get %.1f MB/s (put %.1f MB/s, get %.1f MB/s), peak RSS %.1f MiB (put %.1f MiB, get %.1f MiB, base %.1f MiB; Go heap live ≤ %.1f MiB, goal ≤ %.1f MiB)",
		r.Bytes, r.MBPerS, r.PutMBPerS, r.GetMBPerS, r.PeakRSSMB, r.PutPeakRSSMB, r.GetPeakRSSMB, r.BaseRSSMB, r.GoHeapLiveMB, r.GoHeapGoalMB)
}

// Objects starts an in-process broker storing into storeDir, streams size
// deterministic pseudo-random bytes into the object store with PutReader,
// streams them back with GetReader into a SHA-256 and checks it against the
// ref's digest (the store verifies the digest too), then deletes the
// object. It never holds the value in memory, so the peak RSS it reports is
// what the object path costs, client and embedded server together. The
// peak counter is reset (Linux /proc/self/clear_refs) after the broker has
// started, so broker start-up is not counted but its resident memory is.
func Objects(ctx context.Context, size int64, storeDir string) (ObjectsResult, error) {
	return objectsWith(ctx, size, storeDir, objects.Options{})
}

// objectsWith is Objects with store options, for tuning chunk and window.
func objectsWith(ctx context.Context, size int64, storeDir string, so objects.Options) (ObjectsResult, error) {
	if size <= 0 {
		return ObjectsResult{}, fmt.Errorf("bench objects: size %d: want > 0", size)
	}
	res := ObjectsResult{Bytes: size}
	srv, err := broker.Start(ctx, broker.Options{StoreDir: storeDir, Port: -1})
	if err != nil {
		return res, err
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		return res, fmt.Errorf("bench objects: connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	if err := broker.Provision(ctx, js, nc.ConnectedServerVersion(), broker.ProvisionOptions{}); err != nil {
		return res, err
	}
	st, err := objects.New(ctx, js, so)
	if err != nil {
		return res, err
	}

	stopSampler := sampleGoHeap(&res)
	defer stopSampler()
	res.PeakRSSReset = resetPeakRSS()
	res.BaseRSSMB, _ = procStatusMB("VmRSS")

	start := time.Now()
	ref, err := st.PutReader(ctx, NewPatternReader(size, 1))
	if err != nil {
		return res, fmt.Errorf("bench objects: put: %w", err)
	}
	putDur := time.Since(start)
	res.Digest = ref.Digest
	if ref.Size != size {
		return res, fmt.Errorf("bench objects: put stored %d bytes, want %d", ref.Size, size)
	}

	if res.PeakRSSReset {
		res.PutPeakRSSMB, _ = procStatusMB("VmHWM")
		resetPeakRSS()
	}
	start = time.Now()
	rc, err := st.GetReader(ctx, ref)
	if err != nil {
		return res, fmt.Errorf("bench objects: get: %w", err)
	}
	got := sha256.New()
	n, err := io.Copy(got, rc)
	rc.Close()
	if err != nil {
		return res, fmt.Errorf("bench objects: get: %w", err)
	}
	getDur := time.Since(start)
	if n != size {
		return res, fmt.Errorf("bench objects: got %d bytes, want %d", n, size)
	}
	if g := fmt.Sprintf("sha256:%x", got.Sum(nil)); g != ref.Digest {
		return res, fmt.Errorf("bench objects: got digest %s, want %s", g, ref.Digest)
	}

	peak, err := procStatusMB("VmHWM")
	if err != nil {
		return res, err
	}
	res.PeakRSSMB = peak
	if res.PeakRSSReset {
		res.GetPeakRSSMB = peak
		res.PeakRSSMB = max(res.PutPeakRSSMB, res.GetPeakRSSMB)
	}
	stopSampler()
	if err := st.Delete(ctx, ref); err != nil {
		return res, fmt.Errorf("bench objects: delete: %w", err)
	}
	mb := float64(size) / 1e6
	res.PutMBPerS = mb / putDur.Seconds()
	res.GetMBPerS = mb / getDur.Seconds()
	res.MBPerS = 2 * mb / (putDur + getDur).Seconds()
	return res, nil
}

// NewPatternReader returns a reader of size deterministic pseudo-random
// bytes (ChaCha8 seeded by seed), generated as they are read.
func NewPatternReader(size int64, seed uint64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return io.LimitReader(rand.NewChaCha8(s), size)
}

// resetPeakRSS asks the kernel to reset VmHWM to the current RSS (Linux ≥
// 4.0), so the peak measured is the run's own.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// procStatusMB reads a "kB" field of /proc/self/status in MiB.
func procStatusMB(field string) (float64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("bench objects: read /proc/self/status: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			return 0, fmt.Errorf("bench objects: %s: %w", field, err)
		}
		return kb / 1024, nil
	}
	return 0, errors.New("bench objects: no " + field + " in /proc/self/status")
}

// sampleGoHeap records the Go heap's peak live size and goal into res every
// 10 ms until the returned stop (idempotent) is called.
func sampleGoHeap(res *ObjectsResult) (stop func()) {
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/goal:bytes"}}
	done, exited := make(chan struct{}), make(chan struct{})
	var live, goal uint64
	go func() {
		defer close(exited)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(samples)
			live = max(live, samples[0].Value.Uint64())
			goal = max(goal, samples[1].Value.Uint64())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-exited
			res.GoHeapLiveMB = float64(live) / (1 << 20)
			res.GoHeapGoalMB = float64(goal) / (1 << 20)
		})
	}
}
