// Package taskwire holds the task capability's wire format, which only
// fray itself reads and writes: the task and result records, their
// versions and headers, the subjects and consumer names of FRAY_TASKS and
// FRAY_RESULTS, future ids and the checks on pool and function names.
// PROTOCOL.md documents every record; the user-facing API is package tasks.
package taskwire
