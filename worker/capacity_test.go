package worker_test

import (
	"slices"
	"testing"

	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/internal/frayt"
	"github.com/frayhq/fray/jobs"
	"github.com/frayhq/fray/worker"
)

// Only a job runner offers job capacity: a worker built to host actors
// advertises none, so the dispatcher never gives it a job.
func TestOnlyAWorkerWithAJobRunnerOffersJobCapacity(t *testing.T) {
	srv := frayt.Server(t)
	nc, _ := frayt.Connect(t, srv.ClientURL())
	reg := actors.NewRegistry()
	if err := actors.RegisterBuiltins(reg); err != nil {
		t.Fatal(err)
	}

	host, err := worker.New(nc, worker.Options{Actors: reg})
	if err != nil {
		t.Fatal(err)
	}
	info := host.Info()
	if info.Resources.CPU != 0 || info.Resources.RAMBytes != 0 {
		t.Fatalf("actor host advertises job capacity %+v", info.Resources)
	}
	if !slices.Contains(info.ActorClasses, "fray.Counter") {
		t.Fatalf("actor classes %v, want fray.Counter", info.ActorClasses)
	}

	plugin, err := worker.New(nc, worker.Options{Plugins: []worker.Plugin{actors.NewHost(reg, actors.HostOptions{})}})
	if err != nil {
		t.Fatal(err)
	}
	if cpu := plugin.Info().Resources.CPU; cpu != 0 {
		t.Fatalf("worker with an actor host plugin advertises cpu=%v", cpu)
	}

	runner, err := worker.New(nc, worker.Options{Jobs: &jobs.RunnerOptions{CPU: 3, RAM: "1g"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := runner.Info().Resources; r.CPU != 3 || r.RAMBytes != 1<<30 {
		t.Fatalf("job runner advertises %+v, want cpu=3 ram=1g", r)
	}

	if _, err := worker.New(nc, worker.Options{Jobs: &jobs.RunnerOptions{CPU: -1}}); err == nil {
		t.Fatal("New accepted a runner with negative capacity")
	}
}
