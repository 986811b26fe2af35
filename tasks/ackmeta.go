package tasks

import (
	"errors"
	"strings"
)

// errNotJetStream means a message's reply subject is not a JetStream ack
// subject.
var errNotJetStream = errors.New("reply subject is not a JetStream ack subject")

// ackInfo is what fray reads of a delivered message's metadata.
type ackInfo struct {
	delivered uint64 // times the message was delivered, this one included
	streamSeq uint64 // its stream sequence
	pending   uint64 // messages left for the consumer after this one
}

// ackMeta reads from a JetStream message's reply subject what fray needs
// of its metadata: how many times the message was delivered, its stream
// sequence (the executor) and how many messages the consumer has left
// (the puller). It is nats.Msg.Metadata without the record it allocates,
// for every task. The subject is
// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>
// (9 tokens), or, from newer servers,
// $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>... (11 or more).
func ackMeta(reply string) (ackInfo, error) {
	rest, ok := strings.CutPrefix(reply, "$JS.ACK.")
	if !ok {
		return ackInfo{}, errNotJetStream
	}
	tokens := strings.Count(reply, ".") + 1
	skip := 2 // stream, consumer
	switch {
	case tokens == 9:
	case tokens >= 11:
		skip = 4 // domain, account hash, stream, consumer
	default:
		return ackInfo{}, errNotJetStream
	}
	for range skip {
		_, rest, _ = strings.Cut(rest, ".")
	}
	d, rest, _ := strings.Cut(rest, ".")
	sseq, rest, _ := strings.Cut(rest, ".")
	_, rest, _ = strings.Cut(rest, ".") // consumer sequence
	_, rest, _ = strings.Cut(rest, ".") // timestamp
	pend, _, _ := strings.Cut(rest, ".")
	var a ackInfo
	var okD, okS, okP bool
	a.delivered, okD = parseDecimal(d)
	a.streamSeq, okS = parseDecimal(sseq)
	a.pending, okP = parseDecimal(pend)
	if !okD || !okS || !okP {
		return ackInfo{}, errNotJetStream
	}
	return a, nil
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
