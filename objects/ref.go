package objects

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// RefVersion is the version of the Ref record this package writes.
const RefVersion = 1

// DigestPrefix starts every Ref digest: "sha256:" then 64 lower-case hex
// digits of the SHA-256 of the object's bytes.
const DigestPrefix = "sha256:"

// Ref names an object in the object store by the SHA-256 of its bytes. It is
// a small wire record (CBOR and JSON) that task and result records carry in
// place of values too large to travel inline.
type Ref struct {
	// V is the record version, RefVersion.
	V int `cbor:"v" json:"v"`
	// Bucket is the object store bucket holding the object.
	Bucket string `cbor:"bucket" json:"bucket"`
	// Digest is "sha256:<hex>" of the object's bytes; it is also the object's
	// name in the bucket.
	Digest string `cbor:"digest" json:"digest"`
	// Size is the object's length in bytes.
	Size int64 `cbor:"size" json:"size"`
}

// ErrBadRef reports a Ref that is not well formed.
var ErrBadRef = errors.New("objects: bad ref")

// String renders the ref as "<bucket>/sha256:<hex> (<size> bytes)".
func (r Ref) String() string {
	return fmt.Sprintf("%s/%s (%d bytes)", r.Bucket, r.Digest, r.Size)
}

// IsZero reports whether r is the zero Ref.
func (r Ref) IsZero() bool { return r == Ref{} }

// Validate checks that r is a well-formed version-1 ref: a known version, a
// bucket name, a "sha256:" digest of 64 lower-case hex digits and a
// non-negative size. Errors wrap ErrBadRef.
func (r Ref) Validate() error {
	if r.V != RefVersion {
		return fmt.Errorf("%w: version %d, this fray reads version %d", ErrBadRef, r.V, RefVersion)
	}
	if !validBucket(r.Bucket) {
		return fmt.Errorf("%w: bucket %q", ErrBadRef, r.Bucket)
	}
	if _, err := parseDigest(r.Digest); err != nil {
		return err
	}
	if r.Size < 0 {
		return fmt.Errorf("%w: negative size %d", ErrBadRef, r.Size)
	}
	return nil
}

// parseDigest returns the 32 SHA-256 bytes of a "sha256:<hex>" digest.
func parseDigest(d string) ([]byte, error) {
	h, ok := strings.CutPrefix(d, DigestPrefix)
	if !ok || len(h) != 64 {
		return nil, fmt.Errorf("%w: digest %q: want %q and 64 hex digits", ErrBadRef, d, DigestPrefix)
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return nil, fmt.Errorf("%w: digest %q: want lower-case hex", ErrBadRef, d)
		}
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return nil, fmt.Errorf("%w: digest %q: %v", ErrBadRef, d, err)
	}
	return b, nil
}

func formatDigest(sum []byte) string { return DigestPrefix + hex.EncodeToString(sum) }

// validBucket mirrors JetStream's bucket name rule: [a-zA-Z0-9_-]+.
func validBucket(b string) bool {
	if b == "" || len(b) > 255 {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// DecodeRef decodes a CBOR Ref record and validates it. Unknown keys are
// ignored, so later versions may add fields.
func DecodeRef(data []byte) (Ref, error) {
	var r Ref
	if err := Unmarshal(data, &r); err != nil {
		return Ref{}, fmt.Errorf("%w: %v", ErrBadRef, err)
	}
	if err := r.Validate(); err != nil {
		return Ref{}, err
	}
	return r, nil
}
