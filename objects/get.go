package objects

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// GetBytes reads the whole object ref names and verifies its digest.
func (s *Store) GetBytes(ctx context.Context, ref Ref) ([]byte, error) {
	rc, err := s.GetReader(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := make([]byte, 0, ref.Size)
	buf := bytes.NewBuffer(b)
	if _, err := buf.ReadFrom(rc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// GetReader streams the object ref names, buffering at most
// Options.WindowBytes. The reader returns io.EOF only after the bytes are
// verified against the ref's digest (ErrCorrupt otherwise); it stops early
// with ErrNotFound if the object expires mid-read, and with ctx's error when
// ctx ends. The caller must Close it.
func (s *Store) GetReader(ctx context.Context, ref Ref) (io.ReadCloser, error) {
	if err := s.checkRef(ref); err != nil {
		return nil, err
	}
	want, _ := parseDigest(ref.Digest)
	cur, err := s.lookup(ctx, ref.Digest)
	if err != nil {
		return nil, err
	}
	if cur.info == nil || cur.info.Deleted {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	if !live(cur.info, want, ref.Size) {
		return nil, fmt.Errorf("%w: %s: stored metadata says digest %q, size %d", ErrCorrupt, ref, cur.info.Digest, cur.info.Size)
	}
	r := &reader{
		ctx:    ctx,
		s:      s,
		ref:    ref,
		nuid:   cur.info.NUID,
		chunks: cur.info.Chunks,
		h:      sha256.New(),
		want:   want,
	}
	if ref.Size == 0 {
		return r, nil
	}
	// Chunks expire (TTL) oldest first, before their metadata: an object
	// whose chunks are not all there is gone.
	n, err := s.chunkCount(ctx, r.nuid)
	if err != nil {
		return nil, err
	}
	if n != uint64(r.chunks) {
		return nil, fmt.Errorf("%w: %s (expired: %d of %d chunks left)", ErrNotFound, ref, n, r.chunks)
	}
	cons, err := s.js.OrderedConsumer(ctx, streamName(s.bucket), jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{chunkSubject(s.bucket, r.nuid)},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: 30 * time.Second,
		MaxResetAttempts:  5,
	})
	if err != nil {
		return nil, fmt.Errorf("objects: get %s: consumer: %w", ref.Digest, err)
	}
	// Buffer at most window chunks: chunks are at most max_payload bytes,
	// so a message count bounds memory.
	window := s.window
	if o := cur.info.Opts; o != nil && o.ChunkSize > 0 && int(o.ChunkSize) < s.chunk {
		window = s.window * s.chunk / int(o.ChunkSize) // written with smaller chunks
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(window))
	if err != nil {
		return nil, fmt.Errorf("objects: get %s: %w", ref.Digest, err)
	}
	r.cons, r.it = cons, it
	return r, nil
}

// idleCheck is how long a reader waits for a chunk before checking that the
// object still exists.
const idleCheck = 5 * time.Second

type reader struct {
	ctx    context.Context
	s      *Store
	ref    Ref
	nuid   string
	chunks uint32 // expected
	cons   jetstream.Consumer
	it     jetstream.MessagesContext

	got     uint32 // chunks read
	read    int64  // bytes read
	lastSeq uint64 // stream sequence of the last chunk read
	h       hash.Hash
	want    []byte
	buf     []byte // unread rest of the current chunk
	err     error
}

func (r *reader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.got == r.chunks {
			r.err = r.verify()
			r.stop()
			return 0, r.err
		}
		if err := r.next(); err != nil {
			r.err = err
			r.stop()
			return 0, err
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// next loads the next chunk into r.buf.
func (r *reader) next() error {
	for {
		ctx, cancel := context.WithTimeout(r.ctx, idleCheck)
		m, err := r.it.Next(jetstream.NextContext(ctx))
		cancel()
		if err == nil {
			return r.take(m)
		}
		if r.ctx.Err() != nil {
			return fmt.Errorf("objects: get %s: %w", r.ref.Digest, r.ctx.Err())
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("objects: get %s: chunk %d: %w", r.ref.Digest, r.got, err)
		}
		// Nothing for a while: the rest may have expired.
		if n, err := r.s.chunkCount(r.ctx, r.nuid); err == nil && n < uint64(r.chunks-r.got) {
			return fmt.Errorf("%w: %s (expired while reading)", ErrNotFound, r.ref)
		}
	}
}

func (r *reader) take(m jetstream.Msg) error {
	md, err := m.Metadata()
	if err != nil {
		return fmt.Errorf("objects: get %s: chunk %d: %w", r.ref.Digest, r.got, err)
	}
	if md.Sequence.Stream <= r.lastSeq {
		return fmt.Errorf("%w: %s: chunk out of order", ErrCorrupt, r.ref)
	}
	r.lastSeq = md.Sequence.Stream
	data := m.Data()
	r.got++
	r.read += int64(len(data))
	if r.read > r.ref.Size {
		return fmt.Errorf("%w: %s: more than %d bytes stored", ErrCorrupt, r.ref, r.ref.Size)
	}
	r.h.Write(data)
	r.buf = data
	return nil
}

func (r *reader) verify() error {
	if r.read != r.ref.Size {
		return fmt.Errorf("%w: %s: %d bytes stored", ErrCorrupt, r.ref, r.read)
	}
	if sum := r.h.Sum(nil); !bytes.Equal(sum, r.want) {
		return fmt.Errorf("%w: %s: stored bytes hash to %s", ErrCorrupt, r.ref, formatDigest(sum))
	}
	return io.EOF
}

// stop ends the pull subscription and removes the server-side consumer.
func (r *reader) stop() {
	if r.it == nil {
		return
	}
	r.it.Stop()
	r.it = nil
	if info := r.cons.CachedInfo(); info != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 2*time.Second)
		defer cancel()
		_ = r.s.js.DeleteConsumer(ctx, streamName(r.s.bucket), info.Name)
	}
}

// Close releases the reader; reading after Close fails.
func (r *reader) Close() error {
	r.stop()
	if r.err == nil {
		r.err = errors.New("objects: read after close")
	}
	r.buf = nil
	return nil
}
