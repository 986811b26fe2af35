package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/frayhq/fray/internal/taskwire"
	"golang.org/x/crypto/bcrypt"
)

// ErrBadOptions wraps every mistake in Options.
var ErrBadOptions = errors.New("auth: bad options")

// Tenant is one NATS account: a fray cluster of its own (streams,
// buckets, workers, jobs), invisible to every other tenant on the broker.
type Tenant struct {
	// Name names the account; users are <name>-<role>. Defaults to "fray".
	Name string
	// Producers name the producer users (<tenant>-<name>), each reading
	// only its own results. Defaults to one, "producer".
	Producers []string
	// Workers name the workers (user <tenant>-worker-<name>, worker id
	// <name>): each may write only its own registry entry, report only on
	// its own subjects and pull only its pool's tasks. "<name>@<pool>"
	// names its pool; without one it is tasks' default pool. Defaults to
	// one, "w1".
	Workers []string
}

// Options configures Init.
type Options struct {
	// Dir receives nats.conf and one <user>.env per user. Required; made
	// if missing.
	Dir string
	// Tenants are the accounts. Defaults to one tenant named "fray".
	Tenants []Tenant
	// TLSCert and TLSKey, when set, add a tls block to nats.conf: clients
	// must then connect with TLS (TLSCA, if set, goes into each .env file
	// as FRAY_NATS_CA).
	TLSCert, TLSKey, TLSCA string
}

// User is one generated user.
type User struct {
	Name, Tenant string
	Role         Role
	// WorkerID is the worker id a worker user's credentials fix (its .env
	// file sets FRAY_WORKER_ID to it); empty for the other roles.
	WorkerID string
	// Pool is the one pool a worker user may pull tasks from; empty for
	// the other roles.
	Pool     string
	Password string // in clear: the .env file holds it, nats.conf its bcrypt hash
	EnvFile  string
}

// EnvWorkerID is the variable of a worker's .env file that names the
// worker id its credentials allow: fray-worker takes it as its --id.
const EnvWorkerID = "FRAY_WORKER_ID"

// Result is what Init wrote.
type Result struct {
	ConfigFile string
	Users      []User
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

func (o *Options) validate() error {
	if o.Dir == "" {
		return fmt.Errorf("%w: no output directory", ErrBadOptions)
	}
	if len(o.Tenants) == 0 {
		o.Tenants = []Tenant{{}}
	}
	seen := map[string]bool{}
	for i := range o.Tenants {
		t := &o.Tenants[i]
		if t.Name == "" {
			t.Name = "fray"
		}
		if len(t.Producers) == 0 {
			t.Producers = []string{"producer"}
		}
		if !nameRE.MatchString(t.Name) || seen[t.Name] {
			return fmt.Errorf("%w: tenant %q: want a unique name of letters, digits, '_' and '-'", ErrBadOptions, t.Name)
		}
		seen[t.Name] = true
		if len(t.Workers) == 0 {
			t.Workers = []string{"w1"}
		}
		for _, p := range t.Producers {
			if !nameRE.MatchString(p) || p == string(RoleAdmin) || p == string(RoleWorker) || p == string(RoleViewer) || strings.HasPrefix(p, string(RoleWorker)+"-") {
				return fmt.Errorf("%w: producer %q: want a name of letters, digits, '_' and '-' other than admin, worker, viewer and worker-*", ErrBadOptions, p)
			}
		}
		workers := map[string]bool{}
		for _, spec := range t.Workers {
			w, pool := workerSpec(spec)
			if !nameRE.MatchString(w) || workers[w] {
				return fmt.Errorf("%w: worker %q: want a unique name of letters, digits, '_' and '-' (it is the worker's id), optionally @POOL", ErrBadOptions, spec)
			}
			if err := taskwire.CheckPool(pool); err != nil {
				return fmt.Errorf("%w: worker %q: %v", ErrBadOptions, spec, err)
			}
			workers[w] = true
		}
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return fmt.Errorf("%w: TLS needs both a certificate and its key", ErrBadOptions)
	}
	return nil
}

// Init writes a nats-server configuration (for fray-broker --config) with
// one account per tenant, a user per role and one per worker (nats-server's
// configuration has no permission templates: each worker's block names its
// own subjects), and for each user an .env
// file with its credentials in the FRAY_NATS_* variables. Passwords are
// random; nats.conf holds only their bcrypt hashes.
func Init(o Options) (*Result, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if abs, err := filepath.Abs(o.Dir); err == nil {
		o.Dir = abs
	}
	res := &Result{ConfigFile: filepath.Join(o.Dir, "nats.conf")}
	var conf strings.Builder
	conf.WriteString("# nats-server configuration written by `fray auth init`: one account per\n# fray tenant, one user per role. Start the broker with\n#   fray-broker --config " + res.ConfigFile + "\n# and the broker's own credentials (the admin user of the first tenant).\n")
	if o.TLSCert != "" {
		fmt.Fprintf(&conf, "tls {\n  cert_file: %s\n  key_file: %s\n}\n", strconv.Quote(o.TLSCert), strconv.Quote(o.TLSKey))
	}
	conf.WriteString("accounts {\n")
	for _, t := range o.Tenants {
		fmt.Fprintf(&conf, "  %s: {\n    jetstream: enabled\n    users: [\n", strconv.Quote(t.Name))
		members := []User{{Name: t.Name + "-admin", Role: RoleAdmin}}
		for _, p := range t.Producers {
			members = append(members, User{Name: t.Name + "-" + p, Role: RoleProducer})
		}
		for _, spec := range t.Workers {
			w, pool := workerSpec(spec)
			members = append(members, User{Name: t.Name + "-worker-" + w, Role: RoleWorker, WorkerID: w, Pool: pool})
		}
		members = append(members, User{Name: t.Name + "-viewer", Role: RoleViewer})
		for _, m := range members {
			m.Tenant = t.Name
			u, err := writeUser(o, m)
			if err != nil {
				return nil, err
			}
			hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), bcrypt.DefaultCost)
			if err != nil {
				return nil, fmt.Errorf("auth: %w", err)
			}
			comment := "role " + string(u.Role)
			if u.WorkerID != "" {
				comment += ", worker id " + u.WorkerID + ", pool " + u.Pool
			}
			fmt.Fprintf(&conf, "      # %s\n      { user: %s, password: %s%s }\n", comment, strconv.Quote(u.Name), strconv.Quote(string(hash)), permissionsConf(PermissionsFor(*u)))
			res.Users = append(res.Users, *u)
		}
		conf.WriteString("    ]\n  }\n")
	}
	conf.WriteString("}\n")
	if err := os.WriteFile(res.ConfigFile, []byte(conf.String()), 0o600); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return res, nil
}

// workerSpec splits a worker's "<name>[@<pool>]" into its id and pool
// (tasks' default pool when none is named).
func workerSpec(spec string) (id, pool string) {
	id, pool, found := strings.Cut(spec, "@")
	if !found {
		pool = taskwire.DefaultPool
	}
	return id, pool
}

// writeUser gives u a random password and writes its .env file.
func writeUser(o Options, u User) (*User, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	u.Password, u.EnvFile = base64.RawURLEncoding.EncodeToString(b), filepath.Join(o.Dir, u.Name+".env")
	name := u.Name
	env := fmt.Sprintf("# fray credentials of user %s: role %s, tenant (NATS account) %s.\n# Load with: set -a; . %s; set +a\nFRAY_NATS_USER=%s\nFRAY_NATS_PASSWORD=%s\nFRAY_NATS_INBOX=%s\nFRAY_OWNER=%s\n",
		name, u.Role, u.Tenant, u.EnvFile, name, u.Password, InboxPrefix(name), name)
	if u.WorkerID != "" {
		env += EnvWorkerID + "=" + u.WorkerID + "\n"
	}
	if o.TLSCA != "" {
		env += "FRAY_NATS_CA=" + o.TLSCA + "\n"
	}
	if err := os.WriteFile(u.EnvFile, []byte(env), 0o600); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return &u, nil
}

// permissionsConf renders p as a nats-server user's permissions block.
func permissionsConf(p *Permissions) string {
	if p == nil {
		return ""
	}
	list := func(subjects []string) string {
		q := make([]string, len(subjects))
		for i, s := range subjects {
			q[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	out := fmt.Sprintf(", permissions: { publish: { allow: %s }, subscribe: { allow: %s }", list(p.Publish), list(p.Subscribe))
	if p.AllowResponses {
		out += ", allow_responses: true"
	}
	return out + " }"
}
