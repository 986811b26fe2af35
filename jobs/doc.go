// Package jobs models fray jobs: the JobRequest a user submits (entrypoint,
// resources, environment, retries), the job record and its state machine in
// JetStream, job logs, and the native runner a worker uses to start, watch
// and kill job processes.
package jobs
