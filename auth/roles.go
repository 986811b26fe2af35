package auth

import (
	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/internal/taskwire"
)

// Role is one of fray's roles.
type Role string

// The roles. Admin is unrestricted within its account; the others get the
// permissions Permissions lists.
const (
	// RoleAdmin runs the broker's services: provisioning, the dispatcher,
	// the actor supervisor.
	RoleAdmin Role = "admin"
	// RoleProducer submits tasks and jobs, reads its own results, creates
	// and calls actors, puts and gets objects, and reads what a viewer
	// reads.
	RoleProducer Role = "producer"
	// RoleWorker pulls its pool's tasks, stores results, keeps its own
	// registry entry, reads its own allocation, reports the events and
	// logs of the jobs placed on it, and hosts actors. Each worker is a
	// user of its own: its credentials fix its worker id (User.WorkerID).
	RoleWorker Role = "worker"
	// RoleViewer reads: jobs, workers, actors, logs, stream sizes.
	RoleViewer Role = "viewer"
)

// Roles lists every role, admin first.
var Roles = []Role{RoleAdmin, RoleProducer, RoleWorker, RoleViewer}

// Permissions is what a user may publish and subscribe to (NATS subject
// patterns), and whether it may reply to the requests it receives
// (nats-server's allow_responses).
type Permissions struct {
	Publish        []string
	Subscribe      []string
	AllowResponses bool
}

// Stream-level grants, in the JetStream API's subjects.
const api = "$JS.API."

// readStream lets a user read stream s through consumers and direct
// gets: what KV watches, KV gets, object gets and log tails do.
func readStream(s string) []string {
	return []string{
		api + "CONSUMER.CREATE." + s, api + "CONSUMER.CREATE." + s + ".>",
		api + "CONSUMER.INFO." + s + ".*", api + "CONSUMER.DELETE." + s + ".*",
		api + "CONSUMER.MSG.NEXT." + s + ".*",
		api + "DIRECT.GET." + s, api + "DIRECT.GET." + s + ".>",
		api + "STREAM.MSG.GET." + s,
		"$JS.FC." + s + ".>", // flow control of ordered push consumers
	}
}

// kv names the stream and the put subjects of a KV bucket.
func kvStream(bucket string) string { return "KV_" + bucket }
func kvKeys(bucket string) string   { return "$KV." + bucket + ".>" }

// registry is every grant to read the worker registry, in one place: when
// its layout changes (subjects, buckets), change it here (a worker's
// write of its own entry is in ownWorker).
func registry() []string {
	out := readStream(kvStream(broker.BucketWorkers))
	// the pool directory: direct gets of a pool's record (its changes
	// arrive on the subscription in registrySubscribe)
	return append(out, readStream(kvStream(broker.BucketPools))...)
}

// RegistryKeySubject is the subject a worker writes its registry entry
// on: the one registry grant a worker user holds.
func RegistryKeySubject(workerID string) string { return broker.WorkerKeySubject(workerID) }

// registrySubscribe is the core subscription every client holds to hear
// the pool directory's changes.
func registrySubscribe() string { return kvKeys(broker.BucketPools) }

// common is what every role needs to connect: account and stream info,
// its own user info, its own inbox and its own results' subject (a fray
// client always listens for the results of its owner, = user name).
func common(user string) Permissions {
	return Permissions{
		Publish: []string{api + "INFO", api + "STREAM.INFO.*", api + "STREAM.NAMES", api + "STREAM.LIST", broker.UserInfoSubject},
		Subscribe: []string{
			InboxPrefix(user) + ".>",
			broker.SubjectStoredPrefix + user + ".>",
			"$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED." + broker.StreamResults,
			registrySubscribe(),
		},
	}
}

// viewing is what a viewer reads, and producers too: jobs, workers,
// actors, logs.
func viewing() []string {
	var out []string
	for _, s := range []string{kvStream(broker.BucketJobState), kvStream(broker.BucketActors), broker.StreamLogs} {
		out = append(out, readStream(s)...)
	}
	// queue sizes per pool, as fray workers and the dashboard show them
	out = append(out, api+"CONSUMER.INFO."+broker.StreamTasks+".*", api+"CONSUMER.LIST."+broker.StreamTasks, api+"CONSUMER.NAMES."+broker.StreamTasks)
	return append(out, registry()...)
}

// objectsRW reads and writes the object store.
func objectsRW() []string {
	s := "OBJ_" + broker.BucketObjects
	return append(readStream(s), "$O."+broker.BucketObjects+".>", api+"STREAM.PURGE."+s)
}

// PermissionsFor is what user u (its Name, Role and, for a worker, its
// WorkerID) may do. Admin has no restrictions (nil). A worker without a
// WorkerID gets no grant on any worker's own subjects: it can register
// nothing.
func PermissionsFor(u User) *Permissions {
	user := u.Name
	p := common(user)
	switch u.Role {
	case RoleAdmin:
		return nil
	case RoleViewer:
		p.Publish = append(p.Publish, viewing()...)
	case RoleProducer:
		p.Publish = append(p.Publish, viewing()...)
		p.Publish = append(p.Publish, objectsRW()...)
		p.Publish = append(p.Publish,
			broker.SubjectTasksPrefix+">",         // submit tasks to any pool
			jobwire.SubjectSubmit,                 // submit jobs
			jobwire.SubjectControlPrefix+">",      // stop jobs
			broker.SubjectActorPrefix+">",         // create (place), call and stop actors
			kvKeys(broker.BucketActors),           // claim actor names
			kvKeys(broker.BucketCancels),          // cancel tasks
			broker.SubjectResultsPrefix+user+".>", // record a cancelled task's result
			api+"DIRECT.GET."+broker.StreamResults+"."+broker.SubjectResultsPrefix+user+".>", // read its own results
		)
	case RoleWorker:
		p.Publish = append(p.Publish, registry()...)
		p.Publish = append(p.Publish, objectsRW()...)
		p.Publish = append(p.Publish, readStream(kvStream(broker.BucketActors))...)
		p.Publish = append(p.Publish, readStream(kvStream(broker.BucketCancels))...)
		p.Publish = append(p.Publish, pullPool(u.Pool)...)
		p.Publish = append(p.Publish,
			broker.SubjectResultsPrefix+">", // store the result of any task it runs: by design
			kvKeys(broker.BucketActors),     // actor leases of the actors it hosts
			api+"CONSUMER.DELETE."+kvStream(broker.BucketJobState)+".*",
			"$JS.FC."+kvStream(broker.BucketJobState)+".>",
		)
		p.Subscribe = append(p.Subscribe, broker.SubjectActorPrefix+">") // host actors: calls, control, placement
		p.Publish = append(p.Publish, wakePool(u.Pool))                  // wake a parked worker of its pool
		p.Subscribe = append(p.Subscribe, wakePool(u.Pool))              // park (tasks package)
		p.Subscribe = append(p.Subscribe, kvKeys(broker.BucketCancels))  // new cancellations
		if u.WorkerID != "" {
			own := ownWorker(u.WorkerID)
			p.Publish = append(p.Publish, own.Publish...)
			p.Subscribe = append(p.Subscribe, own.Subscribe...)
		}
		p.AllowResponses = true // reply to actor calls
	default:
		return nil
	}
	return &p
}

// pullPool is what a worker needs to serve pool's tasks: make or bind
// the pool's durable consumer, pull from it and acknowledge what it
// delivers; any pool's when pool is "" (a worker role of no one pool).
func pullPool(pool string) []string {
	s := broker.StreamTasks + ".*"
	if pool != "" {
		s = broker.StreamTasks + "." + taskwire.ConsumerName(pool)
	}
	return []string{
		api + "CONSUMER.CREATE." + s, api + "CONSUMER.CREATE." + s + ".>", api + "CONSUMER.DURABLE.CREATE." + s,
		api + "CONSUMER.INFO." + s, api + "CONSUMER.MSG.NEXT." + s,
		"$JS.ACK." + s + ".>",
	}
}

// wakePool is pool's wake subject; any pool's when pool is "".
func wakePool(pool string) string {
	if pool == "" {
		return broker.SubjectWakePrefix + "*"
	}
	return broker.SubjectWakePrefix + pool
}

// InboxPrefix is the prefix of user's reply subjects: a user may
// subscribe to its own inboxes only (a client sets it with
// fray.WithInboxPrefix or FRAY_NATS_INBOX).
func InboxPrefix(user string) string { return "_INBOX." + user }

// ownWorker is what only worker id may do: write its registry entry, read
// its allocation (the job assignments placed on it, with their
// environments), and report the events and logs of its job processes on
// subjects that name it.
func ownWorker(id string) Permissions {
	alloc := "$KV." + broker.BucketJobState + "." + jobwire.AllocKey(id)
	return Permissions{
		Publish: []string{
			RegistryKeySubject(id),
			api + "CONSUMER.CREATE." + kvStream(broker.BucketJobState) + ".*." + alloc,
			api + "DIRECT.GET." + kvStream(broker.BucketJobState) + "." + alloc,
			jobwire.WorkerEvents(id), // its jobs' events
			jobwire.WorkerLogs(id),   // its jobs' logs
		},
		// changes of its allocation (a core subscription: a worker holds
		// no consumer of its own)
		Subscribe: []string{alloc},
	}
}
