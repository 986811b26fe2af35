package broker

// WorkerInfo is a live worker's record in the FRAY_WORKERS bucket, under the
// key of its ID, leased (per-key TTL) and renewed while the worker lives.
// Version 1. See PROTOCOL.md.
type WorkerInfo struct {
	V           int               `cbor:"v" json:"v"`
	ID          string            `cbor:"id" json:"id"`
	Host        string            `cbor:"host" json:"host"`
	PID         int               `cbor:"pid,omitempty" json:"pid,omitempty"`
	Pool        string            `cbor:"pool" json:"pool"`
	Attributes  map[string]string `cbor:"attrs,omitempty" json:"attrs,omitempty"`
	Concurrency int               `cbor:"concurrency" json:"concurrency"`
	Handlers    []string          `cbor:"handlers,omitempty" json:"handlers,omitempty"`
	Running     int               `cbor:"running" json:"running"`
	Draining    bool              `cbor:"draining,omitempty" json:"draining,omitempty"`
	StartedMS   int64             `cbor:"started_ms" json:"started_ms"`
	// Resources is the capacity the worker offers to jobs.
	Resources WorkerResources `cbor:"resources" json:"resources"`
	// ActorClasses are the actor classes the worker can host.
	ActorClasses []string `cbor:"actor_classes,omitempty" json:"actor_classes,omitempty"`
}

// WorkerResources is a worker's total capacity for jobs.
type WorkerResources struct {
	CPU           float64 `cbor:"cpu" json:"cpu"`
	RAMBytes      int64   `cbor:"ram_bytes,omitempty" json:"ram_bytes,omitempty"`
	DiskBytes     int64   `cbor:"disk_bytes,omitempty" json:"disk_bytes,omitempty"`
	DeviceKind    string  `cbor:"device_kind,omitempty" json:"device_kind,omitempty"`
	DeviceVariant string  `cbor:"device_variant,omitempty" json:"device_variant,omitempty"`
	DeviceCount   int     `cbor:"device_count,omitempty" json:"device_count,omitempty"`
}

// WorkerInfoVersion is the current WorkerInfo record version.
const WorkerInfoVersion = 1
