package objects_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
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
	ports := frayt.FreePorts(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("127.0.0.1:%d", p))
	}
	ctx := frayt.Context(t, 90*time.Second)
	var urls []string
	for i := range 3 {
		srv, err := broker.Start(ctx, broker.Options{
			StoreDir: t.TempDir(), Port: -1, ServerName: fmt.Sprintf("n%d", i),
			ClusterName: "objects-test", ClusterPort: ports[i], Routes: routes,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		urls = append(urls, srv.ClientURL())
	}
	ncA, jsA := frayt.Connect(t, urls[0])
	var perr error
	frayt.Eventually(t, 60*time.Second, "cluster provisioned with 3 replicas", func() bool {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		perr = broker.Provision(pctx, jsA, ncA.ConnectedServerVersion(), broker.ProvisionOptions{Replicas: 3})
		if perr != nil {
			t.Logf("provision: %v", perr)
		}
		return perr == nil
	})
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
