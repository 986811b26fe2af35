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

// PoolDirectory is a pool's entry in the FRAY_POOLS bucket, under the key
// of the pool's name: what the pool's live workers offer together. The
// registry's maintainer (in fray-broker) derives it from FRAY_WORKERS and
// rewrites it only when it changes, so processes that need to know what a
// pool serves (producers, workers handing a task on) follow this record,
// never the lease renewals. Version 1. See PROTOCOL.md.
type PoolDirectory struct {
	V    int    `cbor:"v" json:"v"`
	Pool string `cbor:"pool" json:"pool"`
	// Gen grows by one on every write of the record, so a reader that
	// holds two copies keeps the one with the higher Gen.
	Gen uint64 `cbor:"gen" json:"gen"`
	// Workers is the number of live workers in the pool (0: none now).
	Workers int `cbor:"workers" json:"workers"`
	// Functions is the union of the live workers' Handlers, sorted.
	Functions []string `cbor:"functions,omitempty" json:"functions,omitempty"`
	// ActorClasses is the union of their ActorClasses, sorted.
	ActorClasses []string `cbor:"actor_classes,omitempty" json:"actor_classes,omitempty"`
}

// PoolDirectoryVersion is the current PoolDirectory record version.
const PoolDirectoryVersion = 1
