package broker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/nats-io/nats.go/jetstream"
)

func TestProvisionCreatesEveryAssetAndIsIdempotent(t *testing.T) {
	srv := frayt.Server(t)
	nc, js := frayt.Connect(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	// A second and third run must succeed and change nothing.
	for range 2 {
		if err := broker.Provision(ctx, js, nc.ConnectedServerVersion(), broker.ProvisionOptions{}); err != nil {
			t.Fatalf("re-provision: %v", err)
		}
	}
	for _, name := range []string{broker.StreamTasks, broker.StreamResults, broker.StreamJobs, broker.StreamLogs,
		"KV_" + broker.BucketWorkers, "KV_" + broker.BucketActors, "KV_" + broker.BucketJobState, "KV_" + broker.BucketCancels,
		"OBJ_" + broker.BucketObjects} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		cfg := s.CachedInfo().Config
		if cfg.Storage != jetstream.FileStorage {
			t.Errorf("%s: storage %v, want file", name, cfg.Storage)
		}
		if cfg.Metadata[broker.MetadataLayoutKey] != strconv.Itoa(broker.LayoutVersion) {
			t.Errorf("%s: layout metadata %q", name, cfg.Metadata[broker.MetadataLayoutKey])
		}
	}
	tasks, _ := js.Stream(ctx, broker.StreamTasks)
	if c := tasks.CachedInfo().Config; c.Retention != jetstream.WorkQueuePolicy || c.Discard != jetstream.DiscardNew || c.MaxBytes != 1<<30 {
		t.Errorf("tasks stream: retention %v discard %v maxbytes %d", c.Retention, c.Discard, c.MaxBytes)
	}
}

// A results stream from layout 1 (no republish) is upgraded in place, its
// results kept.
func TestProvisionUpgradesALayout1ResultsStream(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	srv, err := broker.Start(ctx, broker.Options{StoreDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, js := frayt.Connect(t, srv.ClientURL())
	old := jetstream.StreamConfig{Name: broker.StreamResults, Subjects: []string{broker.SubjectResultsPrefix + ">"},
		MaxMsgsPerSubject: 1, Discard: jetstream.DiscardNew, DiscardNewPerSubject: true, AllowDirect: true,
		Metadata: map[string]string{broker.MetadataLayoutKey: "1"}}
	if _, err := js.CreateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, broker.SubjectResultsPrefix+"o.t1", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := broker.Provision(ctx, js, nc.ConnectedServerVersion(), broker.ProvisionOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, broker.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if rp := cfg.RePublish; rp == nil || rp.Source != broker.SubjectResultsPrefix+">" || rp.Destination != broker.SubjectStoredPrefix+">" {
		t.Fatalf("republish %+v", cfg.RePublish)
	}
	if cfg.Metadata[broker.MetadataLayoutKey] != strconv.Itoa(broker.LayoutVersion) || s.CachedInfo().State.Msgs != 1 {
		t.Fatalf("layout %q, %d msgs", cfg.Metadata[broker.MetadataLayoutKey], s.CachedInfo().State.Msgs)
	}
}

func TestProvisionAppliesChangedLimits(t *testing.T) {
	srv := frayt.Server(t)
	nc, js := frayt.Connect(t, srv.ClientURL())
	ctx := frayt.Context(t, 30*time.Second)
	if err := broker.Provision(ctx, js, nc.ConnectedServerVersion(), broker.ProvisionOptions{TaskQueueMaxBytes: 4096, ResultTTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	s, _ := js.Stream(ctx, broker.StreamTasks)
	if got := s.CachedInfo().Config.MaxBytes; got != 4096 {
		t.Errorf("MaxBytes %d, want 4096", got)
	}
	r, _ := js.Stream(ctx, broker.StreamResults)
	if got := r.CachedInfo().Config.MaxAge; got != time.Hour {
		t.Errorf("results MaxAge %s, want 1h", got)
	}
}

func TestProvisionRefusesOldServersAndBadOptions(t *testing.T) {
	if err := broker.CheckServerVersion("2.10.22"); !errors.Is(err, broker.ErrServerTooOld) {
		t.Fatalf("2.10.22: got %v, want ErrServerTooOld", err)
	}
	for _, v := range []string{"2.11.0", "2.15.2", "v2.12.0-beta.1", "3.0.0"} {
		if err := broker.CheckServerVersion(v); err != nil {
			t.Errorf("%s refused: %v", v, err)
		}
	}
	srv := frayt.Server(t)
	nc, js := frayt.Connect(t, srv.ClientURL())
	ctx := frayt.Context(t, 10*time.Second)
	if err := broker.Provision(ctx, js, nc.ConnectedServerVersion(), broker.ProvisionOptions{Replicas: 2}); !errors.Is(err, broker.ErrBadOptions) {
		t.Fatalf("replicas 2: got %v", err)
	}
	if err := broker.Provision(ctx, js, "2.9.0", broker.ProvisionOptions{}); !errors.Is(err, broker.ErrServerTooOld) {
		t.Fatalf("2.9.0: got %v", err)
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	ctx := frayt.Context(t, 10*time.Second)
	cases := map[string]broker.Options{
		"bad sync":             {Port: -1, StoreDir: t.TempDir(), Sync: "sometimes"},
		"routes without name":  {Port: -1, StoreDir: t.TempDir(), Routes: []string{"127.0.0.1:1"}},
		"cluster without name": {Port: -1, StoreDir: t.TempDir(), ClusterName: "c"},
		"missing config":       {Port: -1, StoreDir: t.TempDir(), ConfigFile: "/nonexistent/nats.conf"},
		"store is a file":      {Port: -1, StoreDir: aFile(t)},
	}
	for name, o := range cases {
		if srv, err := broker.Start(ctx, o); !errors.Is(err, broker.ErrBadOptions) {
			if srv != nil {
				srv.Shutdown()
			}
			t.Errorf("%s: got %v, want ErrBadOptions", name, err)
		}
	}
}

func TestSyncAlwaysStarts(t *testing.T) {
	ctx := frayt.Context(t, 10*time.Second)
	srv, err := broker.Start(ctx, broker.Options{Port: -1, StoreDir: t.TempDir(), Sync: broker.SyncAlways})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	if !srv.NATS().JetStreamEnabled() {
		t.Fatal("jetstream disabled")
	}
}

func aFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// takenPort listens on a loopback port until the test ends.
func takenPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func TestStartFailsAtOnceNamingAPortInUse(t *testing.T) {
	port := takenPort(t)
	cases := map[string]struct {
		o    broker.Options
		want string
	}{
		"client port":  {broker.Options{Port: port}, fmt.Sprintf("port %d on 127.0.0.1 is in use; pick another with --port", port)},
		"cluster port": {broker.Options{Port: -1, ServerName: "n1", ClusterName: "c", ClusterPort: port, Routes: []string{"127.0.0.1:1"}}, fmt.Sprintf("cluster port %d on 127.0.0.1 is in use; pick another with --cluster-port", port)},
	}
	for name, c := range cases {
		c.o.StoreDir = t.TempDir()
		began := time.Now()
		srv, err := broker.Start(frayt.Context(t, 30*time.Second), c.o)
		if srv != nil {
			srv.Shutdown()
		}
		if !errors.Is(err, broker.ErrPortInUse) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ErrPortInUse saying %q", name, err, c.want)
		}
		if d := time.Since(began); d > 10*time.Second {
			t.Errorf("%s: took %s to fail", name, d)
		}
	}
}

func TestStartRejectsAStoreThatIsAFileAtOnce(t *testing.T) {
	began := time.Now()
	_, err := broker.Start(frayt.Context(t, 30*time.Second), broker.Options{Port: -1, StoreDir: aFile(t)})
	if !errors.Is(err, broker.ErrBadOptions) || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("got %v, want ErrBadOptions saying not a directory", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("took %s to fail", d)
	}
}

func TestStartReturnsContextCanceledWhenCancelledDuringStartup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	srv, err := broker.Start(ctx, broker.Options{Port: -1, StoreDir: t.TempDir()})
	if srv != nil {
		srv.Shutdown()
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// A server whose JetStream storage cannot hold a stream's reservation makes
// Provision fail naming the stream, its reservation and what to change,
// not only nats-server's "insufficient storage resources".
func TestProvisionOnTooLittleStorageNamesTheReservation(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte("jetstream { max_file_store: 4GB }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := frayt.Context(t, 30*time.Second)
	srv, err := broker.Start(ctx, broker.Options{StoreDir: filepath.Join(dir, "store"), Port: -1, ConfigFile: conf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, js := frayt.Connect(t, srv.ClientURL())
	err = broker.Provision(ctx, js, nc.ConnectedServerVersion(), broker.ProvisionOptions{})
	if err == nil || !strings.Contains(err.Error(), "stream FRAY_LOGS reserves 8192 MiB") || !strings.Contains(err.Error(), "max_file_store") {
		t.Fatalf("provision on 4 GB of JetStream storage: %v; want the FRAY_LOGS reservation named with what to change", err)
	}
	// With a reservation that fits, it succeeds.
	if err := broker.Provision(ctx, js, nc.ConnectedServerVersion(), broker.ProvisionOptions{LogMaxBytes: 1 << 30}); err != nil {
		t.Fatalf("provision with a 1 GiB log stream: %v", err)
	}
}
