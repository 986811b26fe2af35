package objects

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// current is an object's metadata as last published: seq is the metadata
// message's stream sequence (0 when there is none), the base for the next
// compare-and-set publish.
type current struct {
	seq  uint64
	time time.Time
	info *jetstream.ObjectInfo
}

// lookup reads the metadata stored under name.
func (s *Store) lookup(ctx context.Context, name string, mode readMode) (current, error) {
	m, err := s.getLast(ctx, metaSubject(s.bucket, name), mode)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return current{}, nil
	}
	if err != nil {
		return current{}, fmt.Errorf("objects: read metadata of %s: %w", name, err)
	}
	info, err := decodeMeta(m.Data)
	if err != nil {
		return current{}, fmt.Errorf("%s: %w", name, err)
	}
	return current{seq: m.Sequence, time: m.Time, info: info}, nil
}

// chunkCount is the number of chunk messages stored under nuid.
func (s *Store) chunkCount(ctx context.Context, nuid string) (uint64, error) {
	subj := chunkSubject(s.bucket, nuid)
	si, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return 0, fmt.Errorf("objects: count chunks: %w", err)
	}
	return si.State.Subjects[subj], nil
}

// reusable reports whether cur holds a complete copy of the bytes with the
// given digest and size that lives long enough to hand out: with a bucket
// TTL, a copy older than half the TTL is written afresh, so every put yields
// a ref that lives at least TTL/2.
func (s *Store) reusable(ctx context.Context, cur current, sum []byte, size int64) (bool, error) {
	if cur.info == nil || !live(cur.info, sum, size) {
		return false, nil
	}
	if s.ttl > 0 && time.Since(cur.time) > s.ttl/2 {
		return false, nil
	}
	if size == 0 {
		return true, nil
	}
	n, err := s.chunkCount(ctx, cur.info.NUID)
	return err == nil && n == uint64(cur.info.Chunks), err
}

// publishMeta publishes info as the metadata of its name if the name's
// metadata is still at sequence prev (0: none). It reports false when
// another writer got there first.
func (s *Store) publishMeta(ctx context.Context, info jetstream.ObjectInfo, prev uint64) (bool, error) {
	data, err := encodeMeta(info)
	if err != nil {
		return false, fmt.Errorf("objects: encode metadata: %w", err)
	}
	m := nats.NewMsg(metaSubject(s.bucket, info.Name))
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	m.Data = data
	_, err = s.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(prev))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("objects: publish metadata of %s: %w", info.Name, err)
	}
	return true, nil
}

// purgeChunks removes the chunks stored under nuid, on a context of its own
// so that a put cancelled by its caller still cleans up.
func (s *Store) purgeChunks(ctx context.Context, nuid string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(chunkSubject(s.bucket, nuid))); err != nil {
		return fmt.Errorf("objects: purge chunks %s: %w", nuid, err)
	}
	return nil
}

// casAttempts bounds compare-and-set retries against concurrent writers of
// the same name; each retry means another writer made progress.
const casAttempts = 16

// Delete removes the object ref names. Objects are shared by content: this
// removes it for every holder of a ref to the same bytes.
func (s *Store) Delete(ctx context.Context, ref Ref) error {
	if err := s.checkRef(ref); err != nil {
		return err
	}
	for range casAttempts {
		cur, err := s.lookup(ctx, ref.Digest, readLeader)
		if err != nil {
			return err
		}
		if cur.info == nil || cur.info.Deleted {
			return fmt.Errorf("%w: %s", ErrNotFound, ref)
		}
		marker := *cur.info
		marker.Deleted = true
		marker.Size, marker.Chunks, marker.Digest = 0, 0, ""
		marker.ModTime = time.Time{}
		ok, err := s.publishMeta(ctx, marker, cur.seq)
		if err != nil {
			return fmt.Errorf("objects: delete %s: %w", ref.Digest, err)
		}
		if ok {
			return s.purgeChunks(ctx, cur.info.NUID)
		}
	}
	return fmt.Errorf("objects: delete %s: metadata kept changing under %d attempts", ref.Digest, casAttempts)
}
