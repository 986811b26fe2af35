package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray/integration/backends"
)

// A fray-broker configured with several backends runs each job where
// --backend (TargetCluster) says: here native fray workers by default and a
// real Ray head on request, through the same CLI and the same cluster.
func TestBrokerWithSeveralBackendsPlacesJobsByBackendFlag(t *testing.T) {
	ray := backends.Ray(t)
	b := startBroker(t, "", 0, "--backend", "native", "--backend", "ray", "--ray-address", ray.Address, "--ray-namespace", "select")
	c := client(t, b.URL)
	startWorker(t, c, "native-1")
	env := []string{"FRAY_CLUSTER_SPEC=" + b.URL}
	for _, tc := range []struct{ backend, say string }{{"", "on-fray"}, {"ray", "on-ray"}} {
		name := fmt.Sprintf("select-%s-%d", tc.say, time.Now().UnixNano()%1e9)
		args := []string{"submit", "--wait", "--name", name}
		if tc.backend != "" {
			args = append(args, "--backend", tc.backend)
		}
		out, errOut, code := runFray(t, env, 3*time.Minute, append(args, "--", "sh", "-c", "echo "+tc.say)...)
		if code != 0 || !strings.Contains(out, tc.say+"\n") {
			t.Fatalf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", tc.say, code, out, errOut)
		}
		status, _, _ := runFray(t, env, time.Minute, "jobs", "status", "/default/"+name, "--json")
		var rec struct {
			Backend string `json:"backend"`
			Status  string `json:"status"`
		}
		if err := json.Unmarshal([]byte(status), &rec); err != nil {
			t.Fatalf("status json %q: %v", status, err)
		}
		want := map[string]string{"": "native", "ray": "ray"}[tc.backend]
		if rec.Backend != want || rec.Status != "SUCCEEDED" {
			t.Fatalf("%s: backend %q status %q, want %q SUCCEEDED", name, rec.Backend, rec.Status, want)
		}
	}
	// Without a fray cluster, --backend ray --ray-address drives the head
	// from an in-process broker and dispatcher.
	out, errOut, code := runFray(t, []string{"FRAY_CLUSTER_SPEC="}, 3*time.Minute, "submit", "--wait", "--backend", "ray",
		"--ray-address", ray.Address, "--ray-namespace", "select", "--", "sh", "-c", "echo via-flags")
	if code != 0 || !strings.Contains(out, "via-flags\n") {
		t.Fatalf("--backend ray --ray-address: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	// A backend the broker was not configured with is a clear error.
	_, errOut, code = runFray(t, env, time.Minute, "submit", "--backend", "iris", "--", "true")
	if code == 0 || !strings.Contains(errOut, "iris") {
		t.Fatalf("unconfigured backend: exit %d, stderr %q", code, errOut)
	}
}
