package tasks

import "github.com/nats-io/nuid"

// A producer's task ids are a random prefix of its own followed by a
// counter: the prefix is 12 characters drawn from crypto/rand per
// producer (as unique as a NUID across producers), the counter its
// submissions in base 62 without leading zeros (task 12,345 is "3D7"), so
// ids stay short: the id is in a task's Nats-Msg-Id header (after the owner),
// its result's subject, record and republished headers. The number lets a
// result find its future by number (see pendingTable) rather than by
// hashing and comparing the id.
const (
	idPrefixLen = 12
	idSeqMaxLen = 10 // base 62: 62^10 > 8·10^17 ids per producer
)

// ownerLen is the length of a producer's default owner token: drawn as an
// id prefix is, as unique, and shorter than a NUID, for it is in every
// result's subject too.
const ownerLen = 12

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newIDPrefix draws a producer's id prefix: a fresh NUID's random part.
func newIDPrefix() string { return nuid.New().Next()[:idPrefixLen] }

// newOwner draws a producer's default owner token, as newIDPrefix draws a
// prefix.
func newOwner() string { return nuid.New().Next()[:ownerLen] }

// taskID is the id of a producer's task number seq (below 62^10).
func taskID(prefix string, seq uint64) string {
	var b [idPrefixLen + idSeqMaxLen]byte
	return string(appendTaskID(b[:0], prefix, seq))
}

// futureID is the future id "<owner>.<task-id>" of a producer's task
// number seq, in one allocation (the owner is a valid token: at most 128
// bytes).
func futureID(owner, prefix string, seq uint64) string {
	var b [128 + 1 + idPrefixLen + idSeqMaxLen]byte
	n := copy(b[:], owner)
	b[n] = '.'
	return string(appendTaskID(b[:n+1], prefix, seq))
}

// appendTaskID appends the id of a producer's task number seq to b.
func appendTaskID(b []byte, prefix string, seq uint64) []byte {
	b = append(b, prefix...)
	var digits [idSeqMaxLen]byte
	i := len(digits)
	for {
		i--
		digits[i] = base62[seq%62]
		if seq /= 62; seq == 0 || i == 0 {
			break
		}
	}
	return append(b, digits[i:]...)
}

// taskSeq is the number of id if prefix's producer made it: taskID of
// that number is id exactly (no leading zeros, no other characters).
func taskSeq(prefix, id string) (uint64, bool) {
	digits := len(id) - len(prefix)
	if len(prefix) != idPrefixLen || digits < 1 || digits > idSeqMaxLen || id[:idPrefixLen] != prefix ||
		(digits > 1 && id[idPrefixLen] == '0') {
		return 0, false
	}
	var seq uint64
	for i := idPrefixLen; i < len(id); i++ {
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
