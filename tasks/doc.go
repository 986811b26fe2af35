// Package tasks runs registered functions on a pool of fray workers.
//
// Worker side: register typed handlers and serve them with an Executor
// (the worker package does this for you).
//
//	reg := tasks.NewRegistry()
//	tasks.Register(reg, "add", func(ctx context.Context, in [2]int) (int, error) {
//		return in[0] + in[1], nil
//	})
//
// Producer side: submit with a Producer (the root fray.Client wraps one) and
// read results from the Future.
//
//	fut := producer.Submit(ctx, "add", [2]int{1, 2})
//	var sum int
//	err := fut.Get(ctx, &sum)
//
// Tasks run at least once and their result is recorded once: the first
// result stored for a task id wins. A task travels in the WorkQueue stream
// FRAY_TASKS on subject fray.tasks.<pool>; its result in the Limits stream
// FRAY_RESULTS on fray.results.<owner>.<task-id>, which republishes what it
// stores to fray.stored.<owner>.<task-id>, where producers listen: a future
// resolves only with the stored result. PROTOCOL.md documents both records;
// their Go form, subjects and headers are in internal/taskwire.
//
// An Executor pulls only for its free slots. In a pool of more than 64
// live workers, only about 32 keep a pull request open while idle; the
// others park until a backlog or a busy keeper wakes them on
// fray.wake.<pool> (see parking in park.go for why and what it costs).
package tasks
