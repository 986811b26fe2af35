// Package jobwire holds the jobs capability's wire format, which only fray
// itself reads and writes: the subjects and KV keys of the jobs protocol
// and their tokens, the records the dispatcher, the runners and the
// clients exchange (Assignment, Allocation, TaskEvent, Control, LogBatch,
// FindRequest...), record versions, reply codes and log batching bounds.
// PROTOCOL.md documents every record; the user-facing API, and the records
// that embed its types (Record, SubmitRequest, SubmitReply, FindReply), are
// in package jobs.
package jobwire
