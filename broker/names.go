package broker

// Names of the JetStream assets fray provisions. They are part of the wire
// protocol: clients in any language address them by these names.
const (
	StreamTasks   = "FRAY_TASKS"   // WorkQueue; subjects fray.tasks.<pool>
	StreamResults = "FRAY_RESULTS" // Limits + MaxAge; subjects fray.results.<owner>.<task>
	StreamJobs    = "FRAY_JOBS"    // job submissions and control; subjects fray.jobs.>
	StreamLogs    = "FRAY_LOGS"    // job log batches; subjects fray.logs.<job>.<task>

	BucketObjects  = "FRAY_OBJECTS"   // object store, content-addressed
	BucketWorkers  = "FRAY_WORKERS"   // KV, per-key TTL: live workers
	BucketActors   = "FRAY_ACTORS"    // KV, per-key TTL: actor registry
	BucketJobState = "FRAY_JOB_STATE" // KV: job records
	BucketCancels  = "FRAY_CANCELS"   // KV, per-key TTL: cancelled task ids
	BucketPools    = "FRAY_POOLS"     // KV: per-pool worker directory (registry package)

	SubjectTasksPrefix   = "fray.tasks."
	SubjectResultsPrefix = "fray.results."
	// SubjectStoredPrefix is where FRAY_RESULTS republishes each result it
	// stores (fray.stored.<owner>.<task>): a result refused as a task's
	// second is never heard there.
	SubjectStoredPrefix = "fray.stored."
	SubjectJobsPrefix   = "fray.jobs."
	SubjectLogsPrefix   = "fray.logs."
	SubjectActorPrefix  = "fray.actor."
	// SubjectWakePrefix is a pool's wake subject (fray.wake.<pool>): core
	// NATS, no stream. A large pool's parked workers listen on it in a
	// queue group; a message there (its body is empty) asks one of them to
	// pull (tasks package, parking).
	SubjectWakePrefix = "fray.wake."

	// LayoutVersion is the version of the stream and bucket layout that
	// Provision writes into each asset's metadata under MetadataLayoutKey.
	// Version 2 added FRAY_RESULTS's republish to fray.stored.>; version 3
	// the FRAY_POOLS bucket (the pool directory).
	LayoutVersion     = 3
	MetadataLayoutKey = "fray.layout"
)
