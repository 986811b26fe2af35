package objects_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/objects"
)

// TestRefIsReadableAtOnceFromAnotherNodeOfAReplicatedBucket puts on one
// node of a three-node cluster and gets through another right away, many
// times: a follower answering a direct get before it has the write must not
// turn into ErrNotFound.
func TestRefIsReadableAtOnceFromAnotherNodeOfAReplicatedBucket(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	ctx := frayt.Context(t, 90*time.Second)
	nodes, all := frayt.Cluster(t, 3)
	frayt.ProvisionCluster(t, all)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.ClientURL())
	}
	_, jsA := frayt.Connect(t, urls[0])
	writer, err := objects.New(ctx, jsA, objects.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var readers []*objects.Store
	for _, u := range urls[1:] {
		_, js := frayt.Connect(t, u)
		st, err := objects.New(ctx, js, objects.Options{})
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, st)
	}
	for i := range 40 {
		size := 300 << 10 // two chunks: direct gets
		if i%8 == 0 {
			size = 3 << 20 // twelve chunks: a consumer
		}
		b := pattern(size, byte(i))
		ref, err := writer.PutBytes(ctx, b)
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		got, err := readers[i%2].GetBytes(ctx, ref)
		if err != nil {
			t.Fatalf("get %d right after its put: %v", i, err)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("get %d: bytes differ", i)
		}
	}
}
