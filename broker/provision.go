package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ProvisionOptions sizes the layout. Every field has a documented default.
type ProvisionOptions struct {
	// Replicas is the replication factor of every stream and bucket: 1 for a
	// single broker, 3 for a three-node cluster. Defaults to 1.
	Replicas int
	// TaskQueueMaxBytes bounds the bytes of queued tasks; past it a producer
	// gets tasks.ErrQueueFull instead of a silent drop. Defaults to 1 GiB.
	TaskQueueMaxBytes int64
	// TaskQueueMaxMsgs bounds the number of queued tasks. Defaults to
	// unlimited (-1).
	TaskQueueMaxMsgs int64
	// ResultTTL is how long task results stay fetchable by id. Defaults to
	// 24 h.
	ResultTTL time.Duration
	// ObjectTTL expires objects this long after they are put. Defaults to 0:
	// objects live until deleted.
	ObjectTTL time.Duration
	// ObjectMaxBytes bounds the object store. Defaults to unlimited (-1).
	ObjectMaxBytes int64
	// LogTTL is how long job logs are kept. Defaults to 7 days.
	LogTTL time.Duration
	// LogMaxBytes bounds the log stream (oldest dropped first); JetStream
	// reserves that much file storage for it. Defaults to 8 GiB; -1 is
	// unlimited and reserves nothing.
	LogMaxBytes int64
	// JobTTL is how long job submissions and control messages are kept.
	// Defaults to 7 days.
	JobTTL time.Duration
	// OnWait, when set, is told in words what provisioning is waiting for
	// while a cluster forms (a meta leader, peers for the replicas, a
	// stream's leader): when the reason changes, and every 5 s while it
	// does not. Provision waits until ctx ends. Defaults to nil (silent).
	OnWait func(what string)
}

func (o *ProvisionOptions) withDefaults() error {
	switch o.Replicas {
	case 0:
		o.Replicas = 1
	case 1, 3:
	default:
		return fmt.Errorf("%w: replicas %d: want 1 or 3", ErrBadOptions, o.Replicas)
	}
	def64 := func(p *int64, d int64) {
		if *p == 0 {
			*p = d
		}
	}
	defDur := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	def64(&o.TaskQueueMaxBytes, 1<<30)
	def64(&o.TaskQueueMaxMsgs, -1)
	def64(&o.ObjectMaxBytes, -1)
	def64(&o.LogMaxBytes, 8<<30)
	defDur(&o.ResultTTL, 24*time.Hour)
	defDur(&o.LogTTL, 7*24*time.Hour)
	defDur(&o.JobTTL, 7*24*time.Hour)
	if o.ResultTTL < time.Minute {
		return fmt.Errorf("%w: result TTL %s is under the 1m minimum", ErrBadOptions, o.ResultTTL)
	}
	if o.ObjectTTL < 0 {
		return fmt.Errorf("%w: negative object TTL %s", ErrBadOptions, o.ObjectTTL)
	}
	return nil
}

// ErrServerTooOld reports a NATS server that lacks a feature fray needs.
var ErrServerTooOld = errors.New("broker: nats-server too old")

// ErrLayoutTooNew reports a layout provisioned by a newer fray.
var ErrLayoutTooNew = errors.New("broker: layout provisioned by a newer fray")

// ErrLayoutTooOld reports a layout provisioned by an older fray that lacks
// something this one needs; running Provision (fray-broker does at start)
// updates it in place.
var ErrLayoutTooOld = errors.New("broker: layout provisioned by an older fray")

// MinServerVersion is the oldest nats-server fray runs on: per-key TTLs
// (leases for workers and actors) arrived in 2.11.
const MinServerVersion = "2.11.0"

// CheckServerVersion returns ErrServerTooOld, naming the missing feature,
// when version is older than MinServerVersion.
func CheckServerVersion(version string) error {
	if compareVersions(version, MinServerVersion) < 0 {
		return fmt.Errorf("%w: connected to nats-server %s; fray needs per-key TTLs (leases), which need nats-server >= %s", ErrServerTooOld, version, MinServerVersion)
	}
	return nil
}

func compareVersions(a, b string) int {
	pa, pb := versionParts(a), versionParts(b)
	for i := range 3 {
		if pa[i] != pb[i] {
			if pa[i] < pb[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

func versionParts(v string) [3]int {
	v = strings.TrimPrefix(v, "v")
	if i := strings.IndexAny(v, "-+"); i >= 0 {
		v = v[:i]
	}
	var out [3]int
	for i, p := range strings.SplitN(v, ".", 3) {
		out[i], _ = strconv.Atoi(p)
	}
	return out
}

// Provision creates or updates every stream and bucket fray uses. It is
// idempotent and safe to run at once from every node of a cluster: it waits
// (until ctx ends, saying why through OnWait) for a meta leader, for enough
// peers for the replicas and for each stream's leader, and leaves an asset
// whose config already matches alone. serverVersion is the connected
// server's version (nats.Conn.ConnectedServerVersion).
func Provision(ctx context.Context, js jetstream.JetStream, serverVersion string, o ProvisionOptions) error {
	if err := CheckServerVersion(serverVersion); err != nil {
		return err
	}
	if err := o.withDefaults(); err != nil {
		return err
	}
	w := &waiter{onWait: o.OnWait, replicas: o.Replicas}
	if err := w.waitJetStream(ctx, js); err != nil {
		return err
	}
	streams := []jetstream.StreamConfig{{
		Name:        StreamTasks,
		Description: "fray task queue, one durable pull consumer per pool",
		Subjects:    []string{SubjectTasksPrefix + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    o.TaskQueueMaxBytes,
		MaxMsgs:     o.TaskQueueMaxMsgs,
		Duplicates:  2 * time.Minute,
	}, {
		// One result per task, forever: the first result stored for a
		// subject wins and later ones are refused for as long as results are
		// kept, not only within a dedup window (results carry no msg id).
		Name:                 StreamResults,
		Description:          "fray task results, fetched by subject; first result per task wins",
		Subjects:             []string{SubjectResultsPrefix + ">"},
		Retention:            jetstream.LimitsPolicy,
		MaxAge:               o.ResultTTL,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxMsgsPerSubject:    1,
		Duplicates:           time.Minute,
		AllowDirect:          true,
		RePublish:            &jetstream.RePublish{Source: SubjectResultsPrefix + ">", Destination: SubjectStoredPrefix + ">"},
	}, {
		Name:        StreamJobs,
		Description: "fray job submissions and control messages",
		Subjects:    []string{SubjectJobsPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      o.JobTTL,
		Duplicates:  2 * time.Minute,
		AllowDirect: true,
	}, {
		Name:        StreamLogs,
		Description: "fray job logs, batched lines per job task",
		Subjects:    []string{SubjectLogsPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      o.LogTTL,
		MaxBytes:    o.LogMaxBytes,
		AllowDirect: true,
	}}
	for _, cfg := range streams {
		cfg.Storage = jetstream.FileStorage
		cfg.Replicas = o.Replicas
		fp := fingerprint(cfg)
		cfg.Metadata = layoutMetadata(fp)
		err := w.ensure(ctx, js, asset{what: "stream " + cfg.Name, stream: cfg.Name, fingerprint: fp,
			create: func(ctx context.Context) error { _, err := js.CreateStream(ctx, cfg); return err },
			update: func(ctx context.Context) error { _, err := js.UpdateStream(ctx, cfg); return err }})
		if apiErr := (*jetstream.APIError)(nil); errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrStorageResources && cfg.MaxBytes > 0 {
			return fmt.Errorf("%w (stream %s reserves %d MiB of the server's JetStream file storage, and the server has less left: "+
				"free disk under its store, raise its jetstream max_file_store, or lower the reservation: %s)",
				err, cfg.Name, cfg.MaxBytes>>20, reservationKnob(cfg.Name))
		}
		if err != nil {
			return err
		}
	}
	kvs := []jetstream.KeyValueConfig{
		{Bucket: BucketWorkers, Description: "live fray workers (leased)", LimitMarkerTTL: time.Second},
		{Bucket: BucketActors, Description: "fray actor registry (leased)", LimitMarkerTTL: time.Second, History: 1},
		{Bucket: BucketJobState, Description: "fray job records", History: 8},
		{Bucket: BucketPools, Description: "fray worker directory: per pool, its live workers' functions and classes", History: 1},
		{Bucket: BucketCancels, Description: "cancelled fray tasks", LimitMarkerTTL: time.Second, TTL: o.ResultTTL},
	}
	for _, cfg := range kvs {
		cfg.Storage = jetstream.FileStorage
		cfg.Replicas = o.Replicas
		fp := fingerprint(cfg)
		cfg.Metadata = layoutMetadata(fp)
		err := w.ensure(ctx, js, asset{what: "bucket " + cfg.Bucket, stream: "KV_" + cfg.Bucket, fingerprint: fp,
			create: func(ctx context.Context) error { _, err := js.CreateKeyValue(ctx, cfg); return err },
			update: func(ctx context.Context) error { _, err := js.UpdateKeyValue(ctx, cfg); return err }})
		if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
			return fmt.Errorf("%w: bucket %s needs per-key TTLs (nats-server >= %s): %v", ErrServerTooOld, cfg.Bucket, MinServerVersion, err)
		}
		if err != nil {
			return err
		}
	}
	ocfg := jetstream.ObjectStoreConfig{
		Bucket:      BucketObjects,
		Description: "fray objects, named by SHA-256 of their bytes",
		TTL:         o.ObjectTTL,
		MaxBytes:    o.ObjectMaxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
	}
	fp := fingerprint(ocfg)
	ocfg.Metadata = layoutMetadata(fp)
	return w.ensure(ctx, js, asset{what: "object store " + BucketObjects, stream: "OBJ_" + BucketObjects, fingerprint: fp,
		create: func(ctx context.Context) error { _, err := js.CreateObjectStore(ctx, ocfg); return err },
		update: func(ctx context.Context) error { _, err := js.UpdateObjectStore(ctx, ocfg); return err }})
}

// layoutMetadata is the metadata Provision writes on every asset.
func layoutMetadata(fingerprint string) map[string]string {
	return map[string]string{MetadataLayoutKey: strconv.Itoa(LayoutVersion), MetadataConfigKey: fingerprint}
}

// jsErrStorageResources is nats-server's error code for a stream whose
// max_bytes does not fit the storage JetStream has left.
const jsErrStorageResources jetstream.ErrorCode = 10047

// reservationKnob names what sets a stream's max_bytes.
func reservationKnob(stream string) string {
	switch stream {
	case StreamTasks:
		return "fray-broker --queue-max-bytes (ProvisionOptions.TaskQueueMaxBytes)"
	case StreamLogs:
		return "fray-broker --log-max-bytes (ProvisionOptions.LogMaxBytes)"
	}
	return "its ProvisionOptions field"
}
