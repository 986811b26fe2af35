package objects

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// The on-wire layout is NATS object store's, so any NATS client (and the
// nats CLI) can read and list fray's objects: the bucket is the stream
// OBJ_<bucket>; an object's chunks are the messages on $O.<bucket>.C.<nuid>
// in order; its metadata (JSON jetstream.ObjectInfo) is the last message on
// $O.<bucket>.M.<base64url(name)>, published with a subject rollup.
const (
	natsDigestPrefix = "SHA-256=" // ObjectInfo.Digest: base64url of the SHA-256
)

func streamName(bucket string) string { return "OBJ_" + bucket }

func chunkSubject(bucket, nuid string) string { return "$O." + bucket + ".C." + nuid }

func metaSubject(bucket, name string) string {
	return "$O." + bucket + ".M." + base64.URLEncoding.EncodeToString([]byte(name))
}

// natsDigest converts SHA-256 bytes to ObjectInfo.Digest form.
func natsDigest(sum []byte) string {
	return natsDigestPrefix + base64.URLEncoding.EncodeToString(sum)
}

// decodeMeta parses a metadata message.
func decodeMeta(data []byte) (*jetstream.ObjectInfo, error) {
	var info jetstream.ObjectInfo
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, fmt.Errorf("%w: object metadata: %v", ErrCorrupt, err)
	}
	return &info, nil
}

// encodeMeta renders info the way nats.go does: JSON with a zero ModTime
// (the message timestamp is the modification time).
func encodeMeta(info jetstream.ObjectInfo) ([]byte, error) {
	return json.Marshal(info)
}

// live reports whether the metadata describes a present, non-link object
// with the given digest and size.
func live(info *jetstream.ObjectInfo, sum []byte, size int64) bool {
	if info.Deleted || info.NUID == "" || info.Opts != nil && info.Opts.Link != nil {
		return false
	}
	return info.Digest == natsDigest(sum) && int64(info.Size) == size
}
