package auth_test

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/auth"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
)

func TestInitWritesAConfigNATSServerAcceptsAndOneEnvFilePerUser(t *testing.T) {
	dir := t.TempDir()
	res, err := auth.Init(auth.Options{Dir: dir, Tenants: []auth.Tenant{{Name: "a", Producers: []string{"alice", "bob"}}, {Name: "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range res.Users {
		names = append(names, u.Name)
		env, err := os.ReadFile(u.EnvFile)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"FRAY_NATS_USER=" + u.Name + "\n", "FRAY_NATS_PASSWORD=" + u.Password + "\n", "FRAY_NATS_INBOX=_INBOX." + u.Name + "\n", "FRAY_OWNER=" + u.Name + "\n"} {
			if !strings.Contains(string(env), want) {
				t.Errorf("%s lacks %q:\n%s", u.EnvFile, want, env)
			}
		}
		if hasID := strings.Contains(string(env), auth.EnvWorkerID+"="); hasID != (u.Role == auth.RoleWorker) || u.Role == auth.RoleWorker && !strings.Contains(string(env), auth.EnvWorkerID+"="+u.WorkerID+"\n") {
			t.Errorf("%s: worker id %q wrongly written:\n%s", u.EnvFile, u.WorkerID, env)
		}
		if fi, _ := os.Stat(u.EnvFile); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", u.EnvFile, fi.Mode().Perm())
		}
	}
	want := []string{"a-admin", "a-alice", "a-bob", "a-worker-w1", "a-viewer", "b-admin", "b-producer", "b-worker-w1", "b-viewer"}
	if !slices.Equal(names, want) {
		t.Fatalf("users %v, want %v", names, want)
	}
	conf, _ := os.ReadFile(res.ConfigFile)
	if strings.Contains(string(conf), res.Users[0].Password) {
		t.Fatal("nats.conf holds a password in clear")
	}
	srv, err := broker.Start(frayt.Context(t, 30*time.Second), broker.Options{Port: -1, StoreDir: t.TempDir(), ConfigFile: res.ConfigFile})
	if err != nil {
		t.Fatalf("nats-server refuses the config: %v", err)
	}
	srv.Shutdown()
}

func TestInitRefusesBadOptions(t *testing.T) {
	for name, o := range map[string]auth.Options{
		"no dir":                 {},
		"bad tenant":             {Dir: t.TempDir(), Tenants: []auth.Tenant{{Name: "a.b"}}},
		"duplicate tenant":       {Dir: t.TempDir(), Tenants: []auth.Tenant{{Name: "a"}, {Name: "a"}}},
		"producer = role":        {Dir: t.TempDir(), Tenants: []auth.Tenant{{Producers: []string{"worker"}}}},
		"cert without key":       {Dir: t.TempDir(), TLSCert: "c.pem"},
		"producer with dot":      {Dir: t.TempDir(), Tenants: []auth.Tenant{{Producers: []string{"a.b"}}}},
		"producer = worker":      {Dir: t.TempDir(), Tenants: []auth.Tenant{{Producers: []string{"worker-w1"}}}},
		"worker with dot":        {Dir: t.TempDir(), Tenants: []auth.Tenant{{Workers: []string{"w.1"}}}},
		"worker with star":       {Dir: t.TempDir(), Tenants: []auth.Tenant{{Workers: []string{"*"}}}},
		"duplicate worker":       {Dir: t.TempDir(), Tenants: []auth.Tenant{{Workers: []string{"w1", "w1"}}}},
		"same worker, two pools": {Dir: t.TempDir(), Tenants: []auth.Tenant{{Workers: []string{"w1@a", "w1@b"}}}},
		"empty pool":             {Dir: t.TempDir(), Tenants: []auth.Tenant{{Workers: []string{"w1@"}}}},
		"pool with dot":          {Dir: t.TempDir(), Tenants: []auth.Tenant{{Workers: []string{"w1@a.b"}}}},
	} {
		if _, err := auth.Init(o); !errors.Is(err, auth.ErrBadOptions) {
			t.Errorf("%s: %v, want ErrBadOptions", name, err)
		}
	}
}

// The registry's grants follow the registry's bucket: every role reads it,
// a worker writes its own entry only.
func TestRegistryGrantsComeFromTheRegistryBucket(t *testing.T) {
	watch := "$JS.API.CONSUMER.CREATE.KV_" + broker.BucketWorkers + ".>"
	for _, r := range []auth.Role{auth.RoleProducer, auth.RoleWorker, auth.RoleViewer} {
		p := auth.PermissionsFor(auth.User{Name: "u", Role: r, WorkerID: "w1"})
		if !slices.Contains(p.Publish, watch) {
			t.Errorf("%s cannot watch the registry", r)
		}
		own := false
		for _, s := range p.Publish {
			if broker.SubjectMatches(s, auth.RegistryKeySubject("w2")) {
				t.Errorf("%s may write another worker's registry entry: %s", r, s)
			}
			own = own || broker.SubjectMatches(s, auth.RegistryKeySubject("w1"))
		}
		if own != (r == auth.RoleWorker) {
			t.Errorf("%s: may write worker w1's registry entry: %v", r, own)
		}
	}
	if auth.PermissionsFor(auth.User{Name: "u", Role: auth.RoleAdmin}) != nil {
		t.Error("admin is restricted")
	}
}

// A worker user pulls its own pool's tasks and no other's, and wakes and
// waits on its own pool's wake subject only: the pool it was given with
// NAME@POOL, or the default pool.
func TestAWorkerMayPullOnlyItsPool(t *testing.T) {
	res, err := auth.Init(auth.Options{Dir: t.TempDir(), Tenants: []auth.Tenant{{Workers: []string{"w1", "g1@gpu"}}}})
	if err != nil {
		t.Fatal(err)
	}
	pools := map[string]string{}
	for _, u := range res.Users {
		if u.Role == auth.RoleWorker {
			pools[u.WorkerID] = u.Pool
		}
	}
	if pools["w1"] != "default" || pools["g1"] != "gpu" {
		t.Fatalf("worker pools %v, want w1 default and g1 gpu", pools)
	}
	pull := func(pool string) string { return "$JS.API.CONSUMER.MSG.NEXT." + broker.StreamTasks + ".pool-" + pool }
	for id, own := range pools {
		p := auth.PermissionsFor(auth.User{Name: "u", Role: auth.RoleWorker, WorkerID: id, Pool: own})
		for _, pool := range []string{"default", "gpu", "other"} {
			may := false
			for _, s := range p.Publish {
				may = may || broker.SubjectMatches(s, pull(pool))
			}
			if may != (pool == own) {
				t.Errorf("worker %s of pool %s may pull pool %s: %v", id, own, pool, may)
			}
			// A large pool's parked workers wait on its wake subject, and
			// any of its workers wakes them (tasks package, parking).
			wake := broker.SubjectWakePrefix + pool
			pub, sub := false, false
			for _, s := range p.Publish {
				pub = pub || broker.SubjectMatches(s, wake)
			}
			for _, s := range p.Subscribe {
				sub = sub || broker.SubjectMatches(s, wake)
			}
			if pub != (pool == own) || sub != (pool == own) {
				t.Errorf("worker %s of pool %s may publish to %s: %v, subscribe: %v", id, own, wake, pub, sub)
			}
		}
	}
}
