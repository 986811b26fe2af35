package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/jobs"
	"github.com/nats-io/nats.go"
)

// exitWithin waits up to d for p to exit and returns its exit code.
func exitWithin(t *testing.T, p *proc, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s still running after %s:\n%s", p.name, d, p.Output())
	}
	if p.err == nil {
		return 0
	}
	return p.cmd.ProcessState.ExitCode()
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const authConf = `authorization { users: [ { user: "fray", password: "s3cret" } ] }`

// With --config requiring auth, the broker's own connection uses the same
// FRAY_NATS_* credentials as clients and workers.
func TestBrokerWithAnAuthConfigConnectsWithFRAYNATSCredentials(t *testing.T) {
	creds := []string{"FRAY_NATS_USER=fray", "FRAY_NATS_PASSWORD=s3cret"}
	p := start(t, "fray-broker", creds, "--store", t.TempDir(), "--port", "-1", "--log-level", "warn",
		"--config", writeFile(t, "auth.conf", authConf))
	line := p.waitLine("fray-broker ready", time.Minute)
	url := strings.TrimPrefix(strings.Fields(line)[2], "url=")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := fray.Connect(ctx, url, fray.WithUserPass("fray", "s3cret"))
	if err != nil {
		t.Fatalf("client with the same credentials: %v", err)
	}
	defer c.Close()
	start(t, "fray-worker", creds, "--nats", url, "--id", "w-auth", "--log-level", "warn")
	waitFor(t, 30*time.Second, "worker w-auth registered", func() bool {
		for _, w := range c.Workers() {
			if w.ID == "w-auth" {
				return true
			}
		}
		return false
	})
	out, errOut, code := runFray(t, append([]string{"FRAY_CLUSTER_SPEC=" + url}, creds...), time.Minute, "run", "fray.echo", "--arg", `"authed"`, "--wait")
	if code != 0 || strings.TrimSpace(out) != `"authed"` {
		t.Fatalf("fray run with credentials: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestBrokerWithAnAuthConfigButNoCredentialsSaysAuthenticationFailed(t *testing.T) {
	p := start(t, "fray-broker", []string{"FRAY_NATS_USER=", "FRAY_NATS_TOKEN=", "FRAY_NATS_CREDS="}, "--store", t.TempDir(),
		"--port", "-1", "--log-level", "error", "--config", writeFile(t, "auth.conf", authConf))
	if code := exitWithin(t, p, 20*time.Second); code == 0 || !strings.Contains(p.Output(), "authentication failed: set FRAY_NATS_USER/FRAY_NATS_PASSWORD") {
		t.Fatalf("exit %d; want failure saying authentication failed:\n%s", code, p.Output())
	}
	if strings.Contains(p.Output(), "too old") {
		t.Fatalf("misleading message:\n%s", p.Output())
	}
}

func TestBrokerSaysItCannotConnectToAnUnreachableNATS(t *testing.T) {
	p := start(t, "fray-broker", nil, "--nats", "nats://127.0.0.1:1", "--log-level", "error")
	if code := exitWithin(t, p, 30*time.Second); code == 0 || !strings.Contains(p.Output(), "cannot connect to nats://127.0.0.1:1") {
		t.Fatalf("exit %d; want failure saying it cannot connect:\n%s", code, p.Output())
	}
}

func TestBrokerAndFrayUpFailAtOnceWhenThePortIsTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	want := fmt.Sprintf("port %d on 127.0.0.1 is in use; pick another with --port", port)
	p := start(t, "fray-broker", nil, "--store", t.TempDir(), "--port", fmt.Sprint(port), "--log-level", "error")
	if code := exitWithin(t, p, 10*time.Second); code == 0 || !strings.Contains(p.Output(), want) {
		t.Fatalf("fray-broker: exit %d; want failure saying %q:\n%s", code, want, p.Output())
	}
	_, errOut, code := runFray(t, nil, 10*time.Second, "up", "--port", fmt.Sprint(port))
	if code == 0 || !strings.Contains(errOut, want) {
		t.Fatalf("fray up: exit %d; want failure saying %q:\n%s", code, want, errOut)
	}
}

func TestFrayUpRejectsAStoreThatIsAFileAtOnce(t *testing.T) {
	file := writeFile(t, "store", "x")
	_, errOut, code := runFray(t, nil, 10*time.Second, "up", "--port", "-1", "--store", file)
	if code == 0 || !strings.Contains(errOut, "not a directory") {
		t.Fatalf("fray up --store FILE: exit %d, stderr %q", code, errOut)
	}
}

func TestBrokerRejectsBadFlagsAtOnce(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--replicas", "3"}, "--replicas 3 needs a 3-node cluster"},
		{[]string{"--replicas", "2"}, "want 1, or 3"},
		{[]string{"--sync-every", "0s"}, "--sync-every 0s: want a positive duration"},
		{[]string{"--queue-max-bytes", "0"}, "or -1 for unlimited"},
		{[]string{"--queue-max-bytes", "-2"}, "or -1 for unlimited"},
		{[]string{"--log-max-bytes", "0"}, "--log-max-bytes 0: want a positive number of bytes, or -1 for unlimited"},
	}
	for _, c := range cases {
		p := start(t, "fray-broker", nil, append([]string{"--store", t.TempDir(), "--port", "-1"}, c.args...)...)
		if code := exitWithin(t, p, 10*time.Second); code == 0 || !strings.Contains(p.Output(), c.want) {
			t.Errorf("fray-broker %s: exit %d, want failure saying %q:\n%s", strings.Join(c.args, " "), code, c.want, p.Output())
		}
	}
}

// A broker whose JetStream storage cannot hold the job log stream's
// reservation says so and names the flag; with --log-max-bytes lowered it
// starts, and the log stream holds that much.
func TestBrokerOnASmallDiskNamesAndTakesTheLogReservation(t *testing.T) {
	conf := writeFile(t, "nats.conf", "jetstream { max_file_store: 4GB }\n")
	p := start(t, "fray-broker", nil, "--store", t.TempDir(), "--port", "-1", "--config", conf, "--log-level", "error")
	if code := exitWithin(t, p, 30*time.Second); code == 0 || !strings.Contains(p.Output(), "--log-max-bytes") {
		t.Fatalf("fray-broker on 4 GB: exit %d; want failure naming --log-max-bytes:\n%s", code, p.Output())
	}
	b := startBroker(t, "", -1, "--config", conf, "--log-max-bytes", "1073741824")
	_, js := frayt.Connect(t, b.URL)
	ctx := frayt.Context(t, 30*time.Second)
	s, err := js.Stream(ctx, broker.StreamLogs)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxBytes; got != 1<<30 {
		t.Fatalf("%s max_bytes %d, want %d", broker.StreamLogs, got, 1<<30)
	}
}

// SIGTERM while fray-broker is still starting (here: still trying to reach
// its NATS server) stops it quietly.
func TestBrokerStoppedDuringStartupExitsQuietly(t *testing.T) {
	p := start(t, "fray-broker", nil, "--nats", "nats://127.0.0.1:1", "--log-level", "info")
	waitFor(t, 10*time.Second, "fray-broker connecting", func() bool { return strings.Contains(p.Output(), "fray-broker connecting") })
	if err := p.Term(5 * time.Second); err != nil {
		t.Fatalf("exit %v after SIGTERM during startup:\n%s", err, p.Output())
	}
	if out := p.Output(); strings.Contains(out, "not ready") || strings.Contains(out, "cannot connect") {
		t.Fatalf("noisy exit:\n%s", out)
	}
}

// "fray-broker ready" means its services serve: a client that asks the
// dispatcher something the moment the line appears gets an answer, not "no
// responders" (a private broker's client looks its jobs up at once).
func TestBrokerReadyMeansTheDispatcherAnswers(t *testing.T) {
	// A store with job records makes the dispatcher's replay take a while.
	store := t.TempDir()
	b := startBroker(t, store, 0)
	c := client(t, b.URL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	jc, err := c.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if _, err := jc.Submit(ctx, jobs.JobRequest{Name: fmt.Sprintf("j%d", i), Entrypoint: jobs.Command("true")}); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	if err := b.Term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		b = startBroker(t, store, 0)
		nc, err := nats.Connect(b.URL)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := nc.Request(jobwire.SubjectBackends, []byte{0xa0}, 10*time.Second)
		nc.Close()
		if err != nil {
			t.Fatalf("asked the dispatcher right after \"ready\": %v; want an answer", err)
		}
		if len(msg.Data) == 0 {
			t.Fatal("empty answer")
		}
		if err := b.Term(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
}
