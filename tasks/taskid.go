package tasks

import "github.com/nats-io/nuid"

// A producer's task ids are a random prefix of its own followed by a
// counter: 22 characters, like a NUID, as unique (the prefix is 12
// characters drawn from crypto/rand per producer), and numbered, so that
// a result finds its future by the number (see pendingTable) rather than
// by hashing and comparing the id.
const (
	idPrefixLen = 12
	idSeqLen    = 10 // base 62: 62^10 > 8·10^17 ids per producer
	idLen       = idPrefixLen + idSeqLen
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newIDPrefix draws a producer's id prefix: a fresh NUID's random part.
func newIDPrefix() string { return nuid.New().Next()[:idPrefixLen] }

// taskID is the id of a producer's task number seq.
func taskID(prefix string, seq uint64) string {
	var b [idLen]byte
	copy(b[:], prefix)
	for i := idLen - 1; i >= idPrefixLen; i-- {
		b[i] = base62[seq%62]
		seq /= 62
	}
	return string(b[:])
}

// taskSeq is the number of id if prefix's producer made it.
func taskSeq(prefix, id string) (uint64, bool) {
	if len(id) != idLen || id[:idPrefixLen] != prefix {
		return 0, false
	}
	var seq uint64
	for i := idPrefixLen; i < idLen; i++ {
		c := id[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'A' && c <= 'Z':
			d = c - 'A' + 10
		case c >= 'a' && c <= 'z':
			d = c - 'a' + 36
		default:
			return 0, false
		}
		seq = seq*62 + uint64(d)
	}
	return seq, true
}
