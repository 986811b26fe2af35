package objects

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Reads of metadata and small objects use direct gets, which any replica of
// a replicated bucket may answer, including a follower that has not yet
// applied the latest writes. Where that matters the stream leader
// ($JS.API.STREAM.MSG.GET), which has every acknowledged write, is asked.
// On a single-replica bucket every read is a direct get.
type readMode int

const (
	// readFast takes any replica's answer: a stale "not found" costs at
	// most a redundant upload.
	readFast readMode = iota
	// readFresh confirms "not found" with the leader: a ref returned by a
	// put is readable at once from any process.
	readFresh
	// readLeader asks the leader only: the base of a compare-and-set.
	readLeader
)

// getLast reads the last message on subj.
func (s *Store) getLast(ctx context.Context, subj string, mode readMode) (*jetstream.RawStreamMsg, error) {
	if s.replicas > 1 && mode == readLeader {
		return s.leaderGet(ctx, msgGetRequest{LastFor: subj})
	}
	m, err := s.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) && s.replicas > 1 && mode == readFresh {
		return s.leaderGet(ctx, msgGetRequest{LastFor: subj})
	}
	return m, err
}

// getNext reads the first message on subj at or after seq, confirming "not
// found" with the leader.
func (s *Store) getNext(ctx context.Context, seq uint64, subj string) (*jetstream.RawStreamMsg, error) {
	m, err := s.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
	if errors.Is(err, jetstream.ErrMsgNotFound) && s.replicas > 1 {
		return s.leaderGet(ctx, msgGetRequest{Seq: seq, NextFor: subj})
	}
	return m, err
}

type msgGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
}

type msgGetResponse struct {
	Error   *jetstream.APIError `json:"error,omitempty"`
	Message *struct {
		Subject  string    `json:"subject"`
		Sequence uint64    `json:"seq"`
		Data     []byte    `json:"data,omitempty"`
		Time     time.Time `json:"time"`
	} `json:"message,omitempty"`
}

// leaderGet reads one message through the stream leader.
func (s *Store) leaderGet(ctx context.Context, req msgGetRequest) (*jetstream.RawStreamMsg, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.js.Options().DefaultTimeout)
		defer cancel()
	}
	reply, err := s.js.Conn().RequestWithContext(ctx, s.apiPrefix+"STREAM.MSG.GET."+streamName(s.bucket), body)
	if err != nil {
		return nil, fmt.Errorf("objects: stream leader get: %w", err)
	}
	var resp msgGetResponse
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return nil, fmt.Errorf("objects: stream leader get: %w", err)
	}
	if resp.Error != nil {
		if resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound {
			return nil, jetstream.ErrMsgNotFound
		}
		return nil, fmt.Errorf("objects: stream leader get: %w", resp.Error)
	}
	if resp.Message == nil {
		return nil, fmt.Errorf("objects: stream leader get: empty response")
	}
	m := resp.Message
	return &jetstream.RawStreamMsg{Subject: m.Subject, Sequence: m.Sequence, Data: m.Data, Time: m.Time}, nil
}

// apiPrefix is the JetStream API subject prefix js uses.
func apiPrefix(js jetstream.JetStream) string {
	o := js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	default:
		return "$JS.API."
	}
}
