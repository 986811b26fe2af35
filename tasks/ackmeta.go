package tasks

import (
	"errors"
	"strings"
)

// errNotJetStream means a message's reply subject is not a JetStream ack
// subject.
var errNotJetStream = errors.New("reply subject is not a JetStream ack subject")

// ackMeta reads from a JetStream message's reply subject what the
// executor needs of its metadata: how many times the message was
// delivered and its stream sequence. It is nats.Msg.Metadata without the
// record it allocates, for every task. The subject is
// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>
// (9 tokens), or, from newer servers,
// $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>... (11 or more).
func ackMeta(reply string) (delivered, streamSeq uint64, err error) {
	rest, ok := strings.CutPrefix(reply, "$JS.ACK.")
	if !ok {
		return 0, 0, errNotJetStream
	}
	tokens := strings.Count(reply, ".") + 1
	skip := 2 // stream, consumer
	switch {
	case tokens == 9:
	case tokens >= 11:
		skip = 4 // domain, account hash, stream, consumer
	default:
		return 0, 0, errNotJetStream
	}
	for range skip {
		_, rest, _ = strings.Cut(rest, ".")
	}
	d, rest, _ := strings.Cut(rest, ".")
	s, _, _ := strings.Cut(rest, ".")
	var okD, okS bool
	if delivered, okD = parseDecimal(d); !okD {
		return 0, 0, errNotJetStream
	}
	if streamSeq, okS = parseDecimal(s); !okS {
		return 0, 0, errNotJetStream
	}
	return delivered, streamSeq, nil
}

// parseDecimal reads a non-empty run of ASCII digits.
func parseDecimal(s string) (uint64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for i := range len(s) {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
