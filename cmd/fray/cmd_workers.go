package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/internal/jobwire"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go/jetstream"
)

func init() {
	register(command{name: "workers", summary: "list live workers: host, pool, attributes, capacity, what runs", run: runWorkers})
}

// workerView is one line of `fray workers`.
type workerView struct {
	broker.WorkerInfo
	// Jobs are the job tasks assigned to the worker, "<job id>[<task>]".
	Jobs []string `json:"jobs"`
}

func runWorkers(ctx context.Context, args []string) error {
	fs := newFlags("workers", "[flags]")
	natsURL := taskClusterFlag(fs)
	asJSON := fs.Bool("json", false, "print the workers as a JSON array")
	if _, err := parsePositional(fs, args, 0, 0, ""); err != nil {
		return err
	}
	c, err := connectTasks(ctx, fs, *natsURL)
	if err != nil {
		return err
	}
	defer c.Close()
	js := c.JetStream()
	var out []workerView
	if err := readBucket(ctx, js, broker.BucketWorkers, nil, func(_ string, b []byte) {
		var w broker.WorkerInfo
		if objects.Unmarshal(b, &w) == nil && w.ID != "" {
			out = append(out, workerView{WorkerInfo: w})
		}
	}); err != nil {
		return err
	}
	assigned := map[string][]string{}
	if err := readBucket(ctx, js, broker.BucketJobState, []string{jobwire.KeyAllocPrefix + ">"}, func(_ string, b []byte) {
		var a jobwire.Allocation
		if objects.Unmarshal(b, &a) == nil {
			for _, t := range a.Tasks {
				assigned[a.Worker] = append(assigned[a.Worker], fmt.Sprintf("%s[%d]", t.Job, t.Task))
			}
		}
	}); err != nil {
		return err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	for i := range out {
		out[i].Jobs = assigned[out[i].ID]
		if out[i].Jobs == nil {
			out[i].Jobs = []string{}
		}
	}
	if *asJSON {
		if out == nil {
			out = []workerView{}
		}
		return printJSON(out)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHOST\tPOOL\tATTRIBUTES\tCAPACITY\tTASKS\tJOBS")
	for _, w := range out {
		var attrs []string
		for k, v := range w.Attributes {
			attrs = append(attrs, k+"="+v)
		}
		sort.Strings(attrs)
		r := w.Resources
		capacity := fmt.Sprintf("cpu=%g", r.CPU)
		if r.RAMBytes > 0 {
			capacity += " ram=" + jobwire.FormatBytes(r.RAMBytes)
		}
		if r.DeviceKind != "" {
			capacity += fmt.Sprintf(" %s=%s×%d", r.DeviceKind, r.DeviceVariant, r.DeviceCount)
		}
		state := ""
		if w.Draining {
			state = " (draining)"
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\n", w.ID, state, w.Host, w.Pool, strings.Join(attrs, ","), capacity,
			w.Running, w.Concurrency, strings.Join(w.Jobs, " "))
	}
	return tw.Flush()
}

// readBucket calls fn with every live key of a KV bucket (optionally
// filtered).
func readBucket(ctx context.Context, js jetstream.JetStream, bucket string, filters []string, fn func(key string, v []byte)) error {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return fmt.Errorf("open %s: %w", bucket, err)
	}
	var w jetstream.KeyWatcher
	if filters != nil {
		w, err = kv.WatchFiltered(ctx, filters, jetstream.IgnoreDeletes())
	} else {
		w, err = kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	}
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watcher closed")
			}
			if e == nil {
				return nil
			}
			fn(e.Key(), e.Value())
		}
	}
}
