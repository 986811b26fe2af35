package jobs

import (
	"slices"
	"strings"
)

// CredentialVars are the variables a fray process authenticates with
// (the FRAY_NATS_* credentials, its inbox prefix and owner token, a
// worker's id): WithoutCredentials drops them from what job processes
// inherit. They mirror fray.EnvCreds, EnvUser, EnvPassword, EnvToken,
// EnvTLSCert, EnvTLSKey, EnvInbox, EnvOwner and auth.EnvWorkerID.
var CredentialVars = []string{
	"FRAY_NATS_CREDS", "FRAY_NATS_USER", "FRAY_NATS_PASSWORD", "FRAY_NATS_TOKEN",
	"FRAY_NATS_CERT", "FRAY_NATS_KEY", "FRAY_NATS_INBOX", "FRAY_OWNER", "FRAY_WORKER_ID",
}

// WithoutCredentials is env (NAME=VALUE entries) without CredentialVars.
// The CA bundle (FRAY_NATS_CA) stays: it authenticates the servers, not
// the process.
func WithoutCredentials(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(CredentialVars, name) {
			out = append(out, kv)
		}
	}
	return out
}

// envMap is env as a map; a later entry of a name wins.
func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// WithoutUserinfo drops the user and password from each URL of a cluster
// spec ("nats://u:p@host:4222,nats://…"): the cluster a job is told about
// carries no credentials.
func WithoutUserinfo(spec string) string {
	parts := strings.Split(spec, ",")
	for i, p := range parts {
		scheme, rest, ok := strings.Cut(p, "://")
		if !ok {
			continue
		}
		host := rest
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			host = rest[:j]
		}
		if at := strings.LastIndex(host, "@"); at >= 0 {
			parts[i] = scheme + "://" + rest[at+1:]
		}
	}
	return strings.Join(parts, ",")
}
