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

// GetBytes reads the whole object ref names and verifies its digest. An
// object over Options.MaxValueSize is refused with ErrTooLarge (stream it
// with GetReader instead).
func (s *Store) GetBytes(ctx context.Context, ref Ref) ([]byte, error) {
	if s.max > 0 && ref.Size > s.max {
		return nil, s.tooLarge(ref.Size)
	}
	rc, err := s.GetReader(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := bytes.NewBuffer(make([]byte, 0, ref.Size+bytes.MinRead))
	if _, err := buf.ReadFrom(rc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// directChunks is the largest object, in chunks, read with direct gets (one
// request per chunk, no server-side consumer, served by any replica);
// larger objects stream through an ordered consumer.
const directChunks = 4

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
	cur, err := s.lookup(ctx, ref.Digest, readFresh)
	if err != nil {
		return nil, err
	}
	if cur.info == nil || cur.info.Deleted {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	if !live(cur.info, want, ref.Size) {
		return nil, fmt.Errorf("%w: %s: stored metadata says digest %q, size %d", ErrCorrupt, ref, cur.info.Digest, cur.info.Size)
	}
	r := &reader{ctx: ctx, ref: ref, chunks: cur.info.Chunks, h: sha256.New(), want: want}
	switch {
	case ref.Size == 0:
	case r.chunks <= directChunks:
		r.src = &directSource{s: s, subj: chunkSubject(s.bucket, cur.info.NUID), ref: ref}
	default:
		src, err := s.streamChunks(ctx, ref, cur.info)
		if err != nil {
			return nil, err
		}
		r.src = src
	}
	return r, nil
}

// chunkSource yields an object's chunks in order.
type chunkSource interface {
	// next returns the next chunk and its stream sequence.
	next(ctx context.Context) ([]byte, uint64, error)
	close()
}

type reader struct {
	ctx    context.Context
	ref    Ref
	chunks uint32 // expected
	src    chunkSource

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

// next loads the next chunk into r.buf, checking order and length.
func (r *reader) next() error {
	data, seq, err := r.src.next(r.ctx)
	if err != nil {
		return err
	}
	if seq <= r.lastSeq {
		return fmt.Errorf("%w: %s: chunk out of order", ErrCorrupt, r.ref)
	}
	r.lastSeq = seq
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

func (r *reader) stop() {
	if r.src != nil {
		r.src.close()
		r.src = nil
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

// directSource reads chunks one direct get at a time: "the next message on
// the chunk subject after the last one read".
type directSource struct {
	s    *Store
	subj string
	ref  Ref
	seq  uint64 // last read
}

func (d *directSource) next(ctx context.Context) ([]byte, uint64, error) {
	m, err := d.s.getNext(ctx, d.seq+1, d.subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, fmt.Errorf("%w: %s (expired)", ErrNotFound, d.ref)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("objects: get %s: %w", d.ref.Digest, err)
	}
	d.seq = m.Sequence
	return m.Data, m.Sequence, nil
}

func (d *directSource) close() {}

// idleCheck is how long a consumer source waits for a chunk before checking
// that the object still exists.
const idleCheck = 5 * time.Second

// consumerSource streams chunks through an ordered consumer, buffering at
// most a window of them.
type consumerSource struct {
	s      *Store
	ref    Ref
	nuid   string
	chunks uint32
	got    uint32
	window int
	// lastSeq is the stream sequence of the last chunk read: a replacement
	// consumer starts after it.
	lastSeq uint64
	cons    jetstream.Consumer
	it      jetstream.MessagesContext
	ctx     context.Context // for the consumer's deletion
}

func (s *Store) streamChunks(ctx context.Context, ref Ref, info *jetstream.ObjectInfo) (*consumerSource, error) {
	// Chunks expire (TTL) oldest first, before their metadata: an object
	// whose chunks are not all there is gone.
	n, err := s.chunkCount(ctx, info.NUID)
	if err != nil {
		return nil, err
	}
	if n != uint64(info.Chunks) {
		return nil, fmt.Errorf("%w: %s (expired: %d of %d chunks left)", ErrNotFound, ref, n, info.Chunks)
	}
	// Buffer at most a window of chunks. Chunks are at most max_payload
	// bytes, so a message count bounds memory.
	window := s.window
	if o := info.Opts; o != nil && o.ChunkSize > 0 && int(o.ChunkSize) < s.chunk {
		window = s.window * s.chunk / int(o.ChunkSize) // written with smaller chunks
	}
	c := &consumerSource{s: s, ref: ref, nuid: info.NUID, chunks: info.Chunks, window: window, ctx: ctx}
	if c.cons, c.it, err = c.open(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// open starts an ordered consumer at the chunk after the last one read.
func (c *consumerSource) open(ctx context.Context) (jetstream.Consumer, jetstream.MessagesContext, error) {
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{chunkSubject(c.s.bucket, c.nuid)},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: 30 * time.Second,
		MaxResetAttempts:  5,
	}
	if c.lastSeq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, c.lastSeq+1
	}
	cons, err := c.s.js.OrderedConsumer(ctx, streamName(c.s.bucket), cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("objects: get %s: consumer: %w", c.ref.Digest, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(c.window))
	if err != nil {
		return nil, nil, fmt.Errorf("objects: get %s: %w", c.ref.Digest, err)
	}
	return cons, it, nil
}

func (c *consumerSource) next(ctx context.Context) ([]byte, uint64, error) {
	for {
		nctx, cancel := context.WithTimeout(ctx, idleCheck)
		m, err := c.it.Next(jetstream.NextContext(nctx))
		cancel()
		if err == nil {
			md, err := m.Metadata()
			if err != nil {
				return nil, 0, fmt.Errorf("objects: get %s: chunk %d: %w", c.ref.Digest, c.got, err)
			}
			c.got++
			c.lastSeq = md.Sequence.Stream
			return m.Data(), md.Sequence.Stream, nil
		}
		if ctx.Err() != nil {
			return nil, 0, fmt.Errorf("objects: get %s: %w", c.ref.Digest, ctx.Err())
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			return nil, 0, fmt.Errorf("objects: get %s: chunk %d: %w", c.ref.Digest, c.got, err)
		}
		// Nothing for a while: the rest may have expired.
		n, err := c.s.chunkCount(ctx, c.nuid)
		if err == nil && n < uint64(c.chunks-c.got) {
			return nil, 0, fmt.Errorf("%w: %s (expired while reading)", ErrNotFound, c.ref)
		}
		if err == nil {
			// The chunks are there but none came: the consumer stalled (a
			// cluster settling can strand it). Replace it, keeping the old
			// one if no new one can be made now.
			if cons, it, err := c.open(ctx); err == nil {
				c.close()
				c.cons, c.it = cons, it
			}
		}
	}
}

// close ends the pull subscription and deletes the server-side consumer.
func (c *consumerSource) close() {
	c.it.Stop()
	if info := c.cons.CachedInfo(); info != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 2*time.Second)
		defer cancel()
		_ = c.s.js.DeleteConsumer(ctx, streamName(c.s.bucket), info.Name)
	}
}
