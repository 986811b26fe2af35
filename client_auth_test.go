package fray_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/auth"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// authBroker starts a broker configured by the nats-server config conf and
// provisions it as user/password.
func authBroker(t *testing.T, conf, user, password string) *broker.Server {
	t.Helper()
	ctx := frayt.Context(t, 30*time.Second)
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := broker.Start(ctx, broker.Options{Port: -1, StoreDir: t.TempDir(), ConfigFile: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(user, password))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := broker.Provision(ctx, js, nc.ConnectedServerVersion(), broker.ProvisionOptions{}); err != nil {
		t.Fatal(err)
	}
	return srv
}

func TestConnectWithUserPasswordToABrokerConfiguredByFile(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	srv := authBroker(t, `authorization { users = [ { user: trainer, password: s3cret } ] }`, "trainer", "s3cret")

	if _, err := fray.Connect(ctx, srv.ClientURL()); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("connect without credentials: %v, want an authorization error", err)
	}
	c, err := fray.Connect(ctx, srv.ClientURL(), fray.WithUserPass("trainer", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	// The same from the environment, as the CLI and workers read it.
	t.Setenv(fray.EnvUser, "trainer")
	t.Setenv(fray.EnvPassword, "s3cret")
	c, err = fray.Connect(ctx, srv.ClientURL())
	if err != nil {
		t.Fatalf("credentials from the environment: %v", err)
	}
	c.Close()
}

// An account that may not subscribe where stored results arrive gets an
// error naming the subject at Connect, not futures that never resolve.
func TestConnectNamesAResultsSubscriptionTheAccountMayNotMake(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	srv := authBroker(t, `authorization { users = [
		{ user: admin, password: a }
		{ user: trainer, password: t, permissions: { subscribe: { deny: ["fray.stored.>"] } } }
	] }`, "admin", "a")
	_, err := fray.Connect(ctx, srv.ClientURL(), fray.WithUserPass("trainer", "t"))
	if !errors.Is(err, fray.ErrPermissionDenied) || !strings.Contains(err.Error(), `user trainer may not subscribe to "fray.stored.`) {
		t.Fatalf("connect: %v, want an error naming the fray.stored subscription", err)
	}
	c, err := fray.Connect(ctx, srv.ClientURL(), fray.WithUserPass("admin", "a"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// A process connecting to a broker it runs itself (fray up) ignores the
// FRAY_NATS_* credentials and TLS files meant for other clusters.
func TestWithoutEnvCredentialsIgnoresFRAYNATSVariables(t *testing.T) {
	ctx := frayt.Context(t, 30*time.Second)
	srv := frayt.Server(t)
	t.Setenv(fray.EnvTLSCA, filepath.Join(t.TempDir(), "no-such-ca.pem"))
	if c, err := fray.Connect(ctx, srv.ClientURL()); err == nil {
		c.Close()
		t.Fatal("connect with an unreadable FRAY_NATS_CA succeeded: the variable was not applied")
	}
	c, err := fray.Connect(ctx, srv.ClientURL(), fray.WithoutEnvCredentials())
	if err != nil {
		t.Fatalf("connect without the environment: %v", err)
	}
	c.Close()
}

// A user the server refuses a publish gets the refusal at once, naming
// the subject and the user, from every call that publishes: never a
// timeout (a submit used to wait 10 s and blame the dispatcher).
func TestRefusedPublishesFailAtOnceNamingSubjectAndUser(t *testing.T) {
	ctx := frayt.Context(t, 60*time.Second)
	srv := authBroker(t, `authorization { users = [
		{ user: admin, password: a }
		{ user: looker, password: l, permissions: { publish: { deny: ["fray.>", "$KV.>", "$O.>"] } } }
	] }`, "admin", "a")
	c, err := fray.Connect(ctx, srv.ClientURL(), fray.WithUserPass("looker", "l"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	check := func(what string, began time.Time, err error, subject string) {
		t.Helper()
		if d := time.Since(began); d > 3*time.Second {
			t.Errorf("%s: refused after %s, want at once", what, d)
		}
		if !errors.Is(err, fray.ErrPermissionDenied) || !strings.Contains(err.Error(), "user looker may not publish to") || !strings.Contains(err.Error(), subject) {
			t.Errorf("%s: %v; want ErrPermissionDenied naming user looker and %s", what, err, subject)
		}
	}
	began := time.Now()
	_, err = c.Submit(ctx, jobs.JobRequest{Name: "j", Entrypoint: jobs.Command("true")})
	check("submit a job", began, err, "fray.dispatcher.submit")

	began = time.Now()
	var out int
	err = c.Run(ctx, "fray.echo", 1).Get(ctx, &out)
	check("run a task", began, err, `"fray.tasks.default"`)

	began = time.Now()
	_, err = c.Put(ctx, make([]byte, 4<<20))
	check("put an object", began, err, `"$O.FRAY_OBJECTS.`)

	began = time.Now()
	_, err = c.CreateActor(ctx, "Counter", "a1", nil)
	check("create an actor", began, err, `"$KV.FRAY_ACTORS.`)
}

// Every variable a fray process authenticates with is one that job
// processes do not inherit from their worker.
func TestJobsInheritNoneOfTheCredentialVariables(t *testing.T) {
	for _, name := range []string{fray.EnvCreds, fray.EnvUser, fray.EnvPassword, fray.EnvToken, fray.EnvTLSCert, fray.EnvTLSKey, fray.EnvInbox, fray.EnvOwner, auth.EnvWorkerID} {
		env := jobs.WithoutCredentials([]string{"PATH=/bin", name + "=secret", fray.EnvTLSCA + "=/ca.pem"})
		if strings.Contains(strings.Join(env, "\n"), "secret") || len(env) != 2 {
			t.Errorf("%s: jobs inherit %q", name, env)
		}
	}
}
