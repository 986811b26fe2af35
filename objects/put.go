package objects

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/frayhq/fray/broker"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// PutBytes stores b under its SHA-256 and returns its ref. Bytes already
// stored are not sent again.
func (s *Store) PutBytes(ctx context.Context, b []byte) (ref Ref, err error) {
	ctx, unguard := s.guard(ctx)
	defer func() { unguard(); err = broker.Denied(ctx, err) }()
	if s.max > 0 && int64(len(b)) > s.max {
		return Ref{}, s.tooLarge(int64(len(b)))
	}
	sum := sha256.Sum256(b)
	cur, err := s.lookup(ctx, formatDigest(sum[:]), readFast)
	if err != nil {
		return Ref{}, err
	}
	ok, err := s.reusable(ctx, cur, sum[:], int64(len(b)))
	if err != nil {
		return Ref{}, err
	}
	if ok {
		return s.ref(sum[:], int64(len(b))), nil
	}
	up, err := s.upload(ctx, bytes.NewReader(b))
	if err != nil {
		return Ref{}, err
	}
	return s.commit(ctx, up)
}

// PutReader streams r into the store and returns its ref. It holds one
// chunk of r in memory and has at most Options.WindowBytes in flight. The digest is known only at the end:
// the chunks go up under a fresh id and the object's name is published last,
// so a put that fails or loses a race leaves nothing behind.
func (s *Store) PutReader(ctx context.Context, r io.Reader) (ref Ref, err error) {
	ctx, unguard := s.guard(ctx)
	defer func() { unguard(); err = broker.Denied(ctx, err) }()
	if r == nil {
		return Ref{}, errors.New("objects: put: nil reader")
	}
	up, err := s.upload(ctx, r)
	if err != nil {
		return Ref{}, err
	}
	return s.commit(ctx, up)
}

func (s *Store) ref(sum []byte, size int64) Ref {
	return Ref{V: RefVersion, Bucket: s.bucket, Digest: formatDigest(sum), Size: size}
}

// upload is a set of stored chunks not yet named by metadata.
type upload struct {
	nuid   string
	size   int64
	chunks uint32
	sum    []byte
}

// upload sends r as chunks under a fresh nuid, with at most s.window chunks
// unacknowledged. On error it removes what it sent.
func (s *Store) upload(ctx context.Context, r io.Reader) (up upload, err error) {
	up.nuid = nuid.Next()
	subj := chunkSubject(s.bucket, up.nuid)
	w := newAckWindow(s.window)
	defer func() {
		if errors.Is(context.Cause(ctx), broker.ErrPermissionDenied) {
			return // every chunk was refused: nothing stored, no ack to wait for
		}
		if err != nil {
			w.drain(ctx)
			if perr := s.purgeChunks(ctx, up.nuid); perr != nil {
				err = errors.Join(err, perr)
			}
		}
	}()
	h := sha256.New()
	buf := make([]byte, s.chunk)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if s.max > 0 && up.size+int64(n) > s.max {
				return up, s.tooLarge(up.size + int64(n))
			}
			if up.chunks == 1<<32-1 {
				return up, fmt.Errorf("objects: put: over %d chunks", up.chunks)
			}
			h.Write(buf[:n])
			if w.full() {
				if err := w.waitOldest(ctx); err != nil {
					return up, err
				}
			}
			// The publish copies buf into the connection's buffer before
			// returning, so buf is free for the next chunk.
			f, err := s.pub.PublishMsgAsync(&nats.Msg{Subject: subj, Data: buf[:n]})
			if err != nil {
				return up, fmt.Errorf("objects: put chunk %d: %w", up.chunks, err)
			}
			w.push(f)
			up.size += int64(n)
			up.chunks++
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return up, fmt.Errorf("objects: put: read: %w", rerr)
		}
	}
	for w.len() > 0 {
		if err := w.waitOldest(ctx); err != nil {
			return up, err
		}
	}
	up.sum = h.Sum(nil)
	return up, nil
}

// commit names an upload by its digest with a compare-and-set on the name's
// metadata. When the same bytes are already stored (or another put of them
// wins the race) it removes the upload and returns the stored object's ref.
func (s *Store) commit(ctx context.Context, up upload) (Ref, error) {
	ref := s.ref(up.sum, up.size)
	info := jetstream.ObjectInfo{
		ObjectMeta: jetstream.ObjectMeta{
			Name: ref.Digest,
			Opts: &jetstream.ObjectMetaOptions{ChunkSize: uint32(s.chunk)},
		},
		Bucket: s.bucket,
		NUID:   up.nuid,
		Size:   uint64(up.size),
		Chunks: up.chunks,
		Digest: natsDigest(up.sum),
	}
	for range casAttempts {
		cur, err := s.lookup(ctx, ref.Digest, readLeader)
		if err != nil {
			return Ref{}, s.abandon(ctx, up, err)
		}
		if cur.info != nil && cur.info.NUID == up.nuid {
			return ref, nil // an earlier attempt's publish landed after all
		}
		ok, err := s.reusable(ctx, cur, up.sum, up.size)
		if err != nil {
			return Ref{}, s.abandon(ctx, up, err)
		}
		if ok {
			return ref, s.purgeChunks(ctx, up.nuid)
		}
		ok, err = s.publishMeta(ctx, info, cur.seq)
		if err != nil {
			return Ref{}, s.abandon(ctx, up, err)
		}
		if ok {
			// A replaced copy (deleted, stale or incomplete) keeps its chunks
			// until the TTL removes them: a reader may still be on them.
			return ref, nil
		}
	}
	return Ref{}, s.abandon(ctx, up, fmt.Errorf("objects: put %s: metadata kept changing under %d attempts", ref.Digest, casAttempts))
}

// abandon removes an upload after a failed commit, unless the metadata
// publish did land and names it.
func (s *Store) abandon(ctx context.Context, up upload, cause error) error {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	cur, err := s.lookup(lctx, formatDigest(up.sum), readLeader)
	if err == nil && cur.info != nil && cur.info.NUID == up.nuid {
		return cause // the object is stored; the caller's error stands
	}
	if err != nil {
		return errors.Join(cause, err)
	}
	if perr := s.purgeChunks(ctx, up.nuid); perr != nil {
		return errors.Join(cause, perr)
	}
	return cause
}

// ackWindow is a fixed-size FIFO of publish acknowledgements not yet
// received.
type ackWindow struct {
	ring    []jetstream.PubAckFuture
	head, n int
}

func newAckWindow(size int) *ackWindow {
	return &ackWindow{ring: make([]jetstream.PubAckFuture, size)}
}

func (w *ackWindow) len() int   { return w.n }
func (w *ackWindow) full() bool { return w.n == len(w.ring) }

func (w *ackWindow) push(f jetstream.PubAckFuture) {
	w.ring[(w.head+w.n)%len(w.ring)] = f
	w.n++
}

// waitOldest waits for the oldest acknowledgement.
func (w *ackWindow) waitOldest(ctx context.Context) error {
	f := w.ring[w.head]
	w.ring[w.head] = nil
	w.head = (w.head + 1) % len(w.ring)
	w.n--
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return fmt.Errorf("objects: put chunk: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("objects: put: %w", ctx.Err())
	}
}

// drain waits (bounded) for the outstanding acknowledgements so that a
// purge after a failure also removes chunks still in flight.
func (w *ackWindow) drain(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), chunkAckTimeout)
	defer cancel()
	for w.len() > 0 {
		_ = w.waitOldest(ctx)
	}
}

// guard makes a put the server refuses to this user fail at once, naming
// the subject and the user.
func (s *Store) guard(ctx context.Context) (context.Context, context.CancelFunc) {
	return broker.GuardPublish(ctx, s.js.Conn(), "$O."+s.bucket+".>")
}
