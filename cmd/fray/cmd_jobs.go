package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/frayhq/fray/jobs"
)

func init() {
	register(command{name: "jobs", summary: "list jobs (fray jobs [ls] [--json]) or show one (fray jobs status ID [--json])", run: runJobs})
}

func runJobs(ctx context.Context, args []string) error {
	sub := "ls"
	if len(args) > 0 && (args[0] == "ls" || args[0] == "status") {
		sub, args = args[0], args[1:]
	}
	if sub == "status" {
		return runJobStatus(ctx, args)
	}
	fs := newFlags("jobs", "[ls] [flags]")
	natsURL := clusterFlag(fs)
	asJSON := fs.Bool("json", false, "print the job records as a JSON array")
	ns := fs.String("namespace", "", "only jobs of this namespace (default: all)")
	live := fs.Bool("live", false, "only jobs not yet finished")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := connect(ctx, *natsURL)
	if err != nil {
		return err
	}
	defer c.Close()
	recs, err := c.ListJobs(ctx, jobs.Filter{Namespace: *ns, Live: *live})
	if err != nil {
		return err
	}
	if *asJSON {
		if recs == nil {
			recs = []*jobs.Record{}
		}
		return printJSON(recs)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tBACKEND\tREPLICAS\tAGE\tDURATION\tINFO")
	for _, r := range recs {
		info := r.Error
		if r.Status == jobs.StatusPending {
			info = r.PendingReason
		}
		if len(info) > 80 {
			info = info[:77] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", r.ID, r.Status, r.Backend, r.Running(), len(r.Tasks),
			age(r.SubmittedMS), duration(r), info)
	}
	return tw.Flush()
}

func age(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.Since(time.UnixMilli(ms)).Round(time.Second).String()
}

func duration(r *jobs.Record) string {
	if r.StartedMS == 0 {
		return "-"
	}
	end := time.Now()
	if r.FinishedMS != 0 {
		end = time.UnixMilli(r.FinishedMS)
	}
	return end.Sub(time.UnixMilli(r.StartedMS)).Round(time.Millisecond).String()
}

func runJobStatus(ctx context.Context, args []string) error {
	fs := newFlags("jobs", "status ID [flags]")
	natsURL := clusterFlag(fs)
	asJSON := fs.Bool("json", false, "print the job's record as JSON (its state is under the key \"status\")")
	c, h, err := openJob(ctx, fs, args, natsURL, "fray jobs status: give a job id, e.g. fray jobs status /default/train")
	if err != nil {
		return err
	}
	defer c.Close()
	r, err := h.Info(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(r)
	}
	printRecord(r)
	return nil
}

// splitLeadingArg takes a positional argument given before the flags.
func splitLeadingArg(args []string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return "", args
}

func printRecord(r *jobs.Record) {
	fmt.Printf("id:          %s\nstatus:      %s\nbackend:     %s\n", r.ID, r.Status, r.Backend)
	if r.ExternalID != "" {
		fmt.Printf("external id: %s\n", r.ExternalID)
	}
	if r.Parent != "" {
		fmt.Printf("parent:      %s\n", r.Parent)
	}
	if r.PendingReason != "" {
		fmt.Printf("pending:     %s\n", r.PendingReason)
	}
	if r.Error != "" {
		fmt.Printf("error:       %s\n", r.Error)
	}
	cmd, _ := json.Marshal(r.Request.Entrypoint.Argv)
	if r.Request.Entrypoint.Func != "" {
		cmd = []byte("func " + r.Request.Entrypoint.Func)
	}
	fmt.Printf("entrypoint:  %s\n", cmd)
	fmt.Printf("submitted:   %s ago\nduration:    %s\n", age(r.SubmittedMS), duration(r))
	fmt.Printf("attempt:     %d (failures %d, preemptions %d)\n", r.Attempt, r.Failures, r.Preemptions)
	for _, t := range r.Tasks {
		line := fmt.Sprintf("task %d:      %s", t.Index, t.State)
		if t.Worker != "" {
			line += " on " + t.Worker
		}
		if a := t.Current(); a != nil && a.State.Done() {
			line += fmt.Sprintf(" (exit %d", a.ExitCode)
			if a.Error != "" {
				line += ": " + a.Error
			}
			line += ")"
		}
		fmt.Println(line)
	}
}
