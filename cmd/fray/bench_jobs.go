package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/cluster"
	"github.com/frayhq/fray/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jobsBench is `fray bench jobs`' result; --json prints it as one line.
type jobsBench struct {
	Jobs          int     `json:"jobs"`
	StartP50MS    float64 `json:"start_p50_ms"`
	StartP99MS    float64 `json:"start_p99_ms"`
	CompleteP50MS float64 `json:"complete_p50_ms"`
}

func (r jobsBench) String() string {
	return fmt.Sprintf("jobs: %d one at a time on the native backend: submit-to-process-start p50 %.2f ms, p99 %.2f ms; submit-to-SUCCEEDED p50 %.2f ms",
		r.Jobs, r.StartP50MS, r.StartP99MS, r.CompleteP50MS)
}

func benchJobs(ctx context.Context, args []string) error {
	fs := newBenchFlags("jobs")
	n := fs.Int("n", 100, "number of jobs, submitted one at a time")
	asJSON := fs.Bool("json", false, "print one JSON line: jobs, start_p50_ms, start_p99_ms, complete_p50_ms")
	store := fs.String("store", "", "store directory (default: a temporary directory)")
	if _, err := parsePositional(fs, args, 0, 0, ""); err != nil {
		return err
	}
	if *n < 1 {
		return fmt.Errorf("--n %d: want at least 1", *n)
	}
	dir := *store
	if dir == "" {
		tmp, err := os.MkdirTemp("", "fray-bench-jobs-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = filepath.Join(tmp, "store")
	}
	// An in-process broker on file storage, the dispatcher, one worker with
	// the native runner: the same parts as `fray up`.
	local, err := cluster.StartLocal(ctx, cluster.LocalOptions{Broker: broker.Options{StoreDir: dir, Port: -1}, Workers: 1})
	if err != nil {
		return err
	}
	defer local.Stop()
	nc, err := nats.Connect(local.URL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	jc, err := jobs.NewClient(ctx, nc, js, jobs.ClientOptions{Namespace: "bench", Parent: "-"})
	if err != nil {
		return err
	}
	// The process prints the time it started, in ns; the latency is that
	// minus the time Submit was called.
	date, err := findDate()
	if err != nil {
		return err
	}
	var starts, completes []float64
	for i := range *n + 3 {
		req := jobs.JobRequest{Name: fmt.Sprintf("start-%d", i), Entrypoint: jobs.Command(date, "+%s%N")}
		t0 := time.Now()
		h, err := jc.Submit(ctx, req)
		if err != nil {
			return err
		}
		r, err := h.Wait(ctx, jobs.WaitOptions{RaiseOnFailure: true})
		if err != nil {
			return err
		}
		done := time.Since(t0)
		lines, err := h.Logs(ctx, 1)
		if err != nil {
			return err
		}
		var start time.Duration
		if ns, perr := strconv.ParseInt(strings.TrimSpace(firstText(lines)), 10, 64); perr == nil {
			start = time.Unix(0, ns).Sub(t0)
		} else if a := r.Tasks[0].Current(); a != nil {
			start = time.UnixMilli(a.StartMS).Sub(t0)
		}
		if i < 3 {
			continue // warm-up
		}
		starts = append(starts, float64(start)/1e6)
		completes = append(completes, float64(done)/1e6)
	}
	res := jobsBench{Jobs: *n, StartP50MS: pct(starts, 50), StartP99MS: pct(starts, 99), CompleteP50MS: pct(completes, 50)}
	if *asJSON {
		return printJSON(res)
	}
	fmt.Println(res)
	return nil
}

func firstText(l []jobs.LogLine) string {
	if len(l) == 0 {
		return ""
	}
	return l[0].Text
}

func findDate() (string, error) {
	for _, p := range []string{"/bin/date", "/usr/bin/date"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("bench jobs needs date(1) with %%N")
}

func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(float64(len(s)-1) * p / 100)
	return float64(int(s[i]*100+0.5)) / 100
}
