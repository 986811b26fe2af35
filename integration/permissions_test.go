package integration

import (
	"strings"
	"testing"
	"time"
)

// A command the server's permissions refuse fails at once with an error
// naming the subject and the user; it used to wait 10 s and say that no
// dispatcher answered.
func TestCLICommandsRefusedByPermissionsFailAtOnceNamingSubjectAndUser(t *testing.T) {
	conf := writeFile(t, "nats.conf", `authorization { users: [
		{ user: "admin", password: "a" }
		{ user: "looker", password: "l", permissions: { publish: { deny: ["fray.>", "$KV.>", "$O.>"] } } }
	] }`)
	url := startBrokerEnv(t, []string{"FRAY_NATS_USER=admin", "FRAY_NATS_PASSWORD=a"}, "", 0, "--config", conf).URL
	env := []string{"FRAY_CLUSTER_SPEC=" + url, "FRAY_NATS_USER=looker", "FRAY_NATS_PASSWORD=l"}
	for _, c := range []struct {
		args    []string
		subject string
	}{
		{[]string{"submit", "--name", "j", "--", "true"}, `"fray.dispatcher.submit"`},
		{[]string{"run", "fray.echo", "--arg", "1", "--wait"}, `"fray.tasks.default"`},
	} {
		began := time.Now()
		_, errOut, code := runFray(t, env, time.Minute, c.args...)
		if d := time.Since(began); d > 5*time.Second {
			t.Errorf("fray %s: took %s to fail", c.args[0], d)
		}
		if code == 0 || !strings.Contains(errOut, "permission denied: user looker may not publish to "+c.subject) {
			t.Errorf("fray %s: exit %d, stderr %q; want a permission error naming user looker and %s", c.args[0], code, errOut, c.subject)
		}
	}
}
