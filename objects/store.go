package objects

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// DefaultInlineThreshold is the largest encoded value that travels
	// inline in task and result records; larger ones go through the object
	// store.
	DefaultInlineThreshold = 256 << 10
	// DefaultChunkSize is the size of the messages an object is cut into.
	DefaultChunkSize = 256 << 10
	// DefaultWindowBytes bounds the chunk bytes a put has in flight (sent,
	// not yet acknowledged) and a get has buffered.
	DefaultWindowBytes = 2 << 20
)

// Options configures a Store. Every field has a documented default.
type Options struct {
	// Bucket is the object store bucket. Defaults to broker.BucketObjects.
	Bucket string
	// InlineThreshold is the largest encoded value, in bytes, that callers
	// carry inline in their records; larger ones they Put. Defaults to
	// 256 KiB.
	InlineThreshold int
	// MaxValueSize refuses puts of larger values with ErrTooLarge. Defaults
	// to 0: unlimited.
	MaxValueSize int64
	// ChunkSize is the size of each stored chunk. Defaults to
	// DefaultChunkSize, capped at the server's max_payload.
	ChunkSize int
	// WindowBytes bounds memory per put and per get: the chunk bytes in
	// flight to, or buffered from, the server. Defaults to
	// DefaultWindowBytes; at least two chunks.
	WindowBytes int
}

// Store puts and gets content-addressed objects in a JetStream object store
// bucket. It is safe for concurrent use.
type Store struct {
	js     jetstream.JetStream // API calls and synchronous publishes
	pub    jetstream.JetStream // asynchronous chunk publishes, own ack timeout
	stream jetstream.Stream
	// apiPrefix and replicas serve reads through the stream leader.
	apiPrefix string
	replicas  int
	bucket    string
	ttl       time.Duration
	inline    int
	max       int64
	chunk     int
	window    int // chunks
}

var (
	// ErrNotFound reports a ref whose object is missing, deleted or expired.
	ErrNotFound = errors.New("objects: not found")
	// ErrTooLarge reports a value over Options.MaxValueSize.
	ErrTooLarge = errors.New("objects: value too large")
	// ErrCorrupt reports stored bytes or metadata that do not match the
	// ref: a digest or size mismatch, or unreadable metadata.
	ErrCorrupt = errors.New("objects: corrupt object")
)

// chunkAckTimeout bounds the wait for one chunk's acknowledgement.
const chunkAckTimeout = 30 * time.Second

// New binds to the provisioned object store bucket (broker.Provision
// creates it) and validates o. A Store lives as long as js's connection (it
// keeps one subscription for publish acknowledgements): create one per
// connection and share it.
func New(ctx context.Context, js jetstream.JetStream, o Options) (*Store, error) {
	if o.Bucket == "" {
		o.Bucket = broker.BucketObjects
	}
	if !validBucket(o.Bucket) {
		return nil, fmt.Errorf("objects: bucket name %q: want [A-Za-z0-9_-]+", o.Bucket)
	}
	if o.InlineThreshold == 0 {
		o.InlineThreshold = DefaultInlineThreshold
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.WindowBytes == 0 {
		o.WindowBytes = DefaultWindowBytes
	}
	switch {
	case o.InlineThreshold < 0:
		return nil, fmt.Errorf("objects: negative inline threshold %d", o.InlineThreshold)
	case o.MaxValueSize < 0:
		return nil, fmt.Errorf("objects: negative max value size %d", o.MaxValueSize)
	case o.ChunkSize < 1024:
		return nil, fmt.Errorf("objects: chunk size %d: want at least 1024", o.ChunkSize)
	case o.WindowBytes < 0:
		return nil, fmt.Errorf("objects: negative window %d", o.WindowBytes)
	}
	if mp := js.Conn().MaxPayload(); mp > 0 && int64(o.ChunkSize) > mp {
		o.ChunkSize = int(mp)
	}
	stream, err := js.Stream(ctx, streamName(o.Bucket))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("objects: object store bucket %s does not exist; provision the broker first (broker.Provision): %w", o.Bucket, jetstream.ErrBucketNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("objects: bind bucket %s: %w", o.Bucket, err)
	}
	pub, err := publisher(js)
	if err != nil {
		return nil, err
	}
	return &Store{
		js:        js,
		pub:       pub,
		stream:    stream,
		apiPrefix: apiPrefix(js),
		replicas:  stream.CachedInfo().Config.Replicas,
		bucket:    o.Bucket,
		ttl:       stream.CachedInfo().Config.MaxAge,
		inline:    o.InlineThreshold,
		max:       o.MaxValueSize,
		chunk:     o.ChunkSize,
		window:    max(2, o.WindowBytes/o.ChunkSize),
	}, nil
}

// publisher is a JetStream context on js's connection and API prefix whose
// async publishes time out, so a lost acknowledgement cannot hang a put.
func publisher(js jetstream.JetStream) (jetstream.JetStream, error) {
	jo := js.Options()
	opts := []jetstream.JetStreamOpt{jetstream.WithPublishAsyncTimeout(chunkAckTimeout)}
	if jo.DefaultTimeout > 0 {
		opts = append(opts, jetstream.WithDefaultTimeout(jo.DefaultTimeout))
	}
	var (
		pub jetstream.JetStream
		err error
	)
	switch {
	case jo.Domain != "":
		pub, err = jetstream.NewWithDomain(js.Conn(), jo.Domain, opts...)
	case jo.APIPrefix != "":
		pub, err = jetstream.NewWithAPIPrefix(js.Conn(), jo.APIPrefix, opts...)
	default:
		pub, err = jetstream.New(js.Conn(), opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("objects: jetstream publisher: %w", err)
	}
	return pub, nil
}

// InlineThreshold is the largest encoded value, in bytes, that travels
// inline in records; larger values go through the store.
func (s *Store) InlineThreshold() int { return s.inline }

// Bucket is the bucket this store reads and writes.
func (s *Store) Bucket() string { return s.bucket }

// TTL is the bucket's object lifetime as it was when the store was bound; 0
// means objects live until deleted.
func (s *Store) TTL() time.Duration { return s.ttl }

// Put encodes v as CBOR (Marshal) and stores the bytes.
func (s *Store) Put(ctx context.Context, v any) (Ref, error) {
	b, err := Marshal(v)
	if err != nil {
		return Ref{}, err
	}
	return s.PutBytes(ctx, b)
}

// Get reads the object ref names, verifies it and decodes its CBOR into v.
func (s *Store) Get(ctx context.Context, ref Ref, v any) error {
	b, err := s.GetBytes(ctx, ref)
	if err != nil {
		return err
	}
	return Unmarshal(b, v)
}

func (s *Store) tooLarge(n int64) error {
	return fmt.Errorf("%w: %d bytes is over the %d-byte limit (objects.Options.MaxValueSize)", ErrTooLarge, n, s.max)
}

// checkRef validates ref and that it names an object in this store's bucket.
func (s *Store) checkRef(ref Ref) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	if ref.Bucket != s.bucket {
		return fmt.Errorf("%w: %s is in bucket %s; this store serves %s", ErrBadRef, ref, ref.Bucket, s.bucket)
	}
	return nil
}
