package jobwire

// Subjects of the backend look-ups the dispatchers serve (core-NATS
// requests, queue group QueueDispatchers, outside every stream). See
// docs/protocol/backends.md.
const (
	// SubjectFind: FindRequest in, FindReply out. The dispatcher asks its
	// external backends (Ray, Iris) for the job (or all of fray's jobs) and
	// records what they have in FRAY_JOB_STATE before it answers.
	SubjectFind = "fray.dispatcher.find"
	// SubjectBackends: BackendsRequest in, BackendsReply out: the
	// dispatcher's backends and where they are.
	SubjectBackends = "fray.dispatcher.backends"
)

// FindRequest asks a dispatcher to look jobs up on its external backends.
// With ID set it looks up that job: the backend's newest run of it; with
// All set, every job of fray's the backends list.
type FindRequest struct {
	V   int    `cbor:"v"`
	ID  string `cbor:"id,omitempty"`
	All bool   `cbor:"all,omitempty"`
}

// BackendsRequest asks a dispatcher which backends it runs jobs on.
type BackendsRequest struct {
	V int `cbor:"v"`
}
