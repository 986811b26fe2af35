// Package jobs models fray jobs: the JobRequest a user submits (entrypoint,
// resources, environment, retries), the job record and its compare-and-set
// state machine in KV FRAY_JOB_STATE, job logs in stream FRAY_LOGS, the
// client side (Submit, Handle, ListJobs) and the native Runner a worker uses
// to start, watch and kill job processes.
//
// Most programs go through the root client:
//
//	h, err := client.Submit(ctx, jobs.JobRequest{
//		Name:       "train",
//		Entrypoint: jobs.Command("python", "train.py"),
//		Resources:  jobs.ResourceConfig{CPU: 4, RAM: "16g"},
//	})
//	rec, err := h.Wait(ctx, jobs.WaitOptions{RaiseOnFailure: true})
//	for line, err := range h.Follow(ctx) { fmt.Println(line.Text) }
//
// A worker binary runs jobs by adding the runner to its plugins:
//
//	runner, err := jobs.NewRunner(jobs.RunnerOptions{CPU: 8, RAM: "32g"})
//	w, err := worker.New(nc, worker.Options{Plugins: []worker.Plugin{runner}})
//
// The wire protocol (subjects, keys, records) is in docs/protocol/jobs.md;
// its Go form, which only fray itself uses, is in internal/jobwire (the
// records that embed this package's types, Record, SubmitRequest,
// SubmitReply and FindReply, stay here).
package jobs
