package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/frayhq/fray/jobs"
)

func init() {
	register(command{name: "jobs", summary: "list jobs (fray jobs [ls] [--json]) or show one (fray jobs status ID [--json])", run: runJobs})
}

func runJobs(ctx context.Context, args []string) error {
	explicit := len(args) > 0 && (args[0] == "ls" || args[0] == "status")
	if explicit && args[0] == "status" {
		return runJobStatus(ctx, args[1:])
	}
	if explicit {
		args = args[1:]
	}
	fs := newFlags("jobs", "[ls] [flags]")
	natsURL := clusterFlag(fs)
	asJSON := fs.Bool("json", false, "print the job records as a JSON array")
	ns := fs.String("namespace", "", "only jobs of this namespace (default: all)")
	live := fs.Bool("live", false, "only jobs not yet finished")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if !explicit && len(pos) > 0 && (pos[0] == "status" || pos[0] == "ls") {
		// The subcommand after a flag: fray jobs --json status ID.
		i := slices.Index(args, pos[0])
		if pos[0] == "status" {
			return runJobStatus(ctx, append(args[:i:i], args[i+1:]...))
		}
		pos = pos[1:]
	}
	if len(pos) > 0 {
		return usagef(fs, "unexpected argument %q; want fray jobs [ls] or fray jobs status ID", pos[0])
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
		if lost := contactLost(r, time.Now()); lost != "" {
			info = lost
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

// contactLost says, for a live job whose backend the dispatcher cannot
// reach, since when and why ("backend unreachable since 12:03:04 (2m10s):
// …"), else "".
func contactLost(r *jobs.Record, now time.Time) string {
	if r.UnreachableSinceMS == 0 || r.Status.Terminal() {
		return ""
	}
	since := time.UnixMilli(r.UnreachableSinceMS)
	at := since.Format(time.TimeOnly)
	if y, m, d := since.Date(); now.Year() != y || now.Month() != m || now.Day() != d {
		at = since.Format(time.DateTime)
	}
	return fmt.Sprintf("backend unreachable since %s (%s): %s", at, now.Sub(since).Round(time.Second), r.UnreachableError)
}

func runJobStatus(ctx context.Context, args []string) error {
	fs := newFlagsFor("jobs status", "ID [flags]", "show one job: its state, entrypoint, attempts and tasks")
	natsURL := clusterFlag(fs)
	asJSON := fs.Bool("json", false, "print the job's record as JSON (its state is under the key \"status\")")
	pos, err := parsePositional(fs, args, 1, 1, "job ID, e.g. fray jobs status /default/train")
	if err != nil {
		return err
	}
	if err := checkJobArgs(fs, pos); err != nil {
		return err
	}
	c, hs, err := openJobs(ctx, *natsURL, pos)
	if err != nil {
		return err
	}
	defer c.Close()
	r, err := hs[0].Info(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(r)
	}
	printRecord(r)
	return nil
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
		fmt.Printf("pending:     %s%s\n", r.PendingReason, pendingFor(r, time.Now()))
	}
	if r.Error != "" {
		fmt.Printf("error:       %s\n", r.Error)
	}
	if lost := contactLost(r, time.Now()); lost != "" {
		fmt.Printf("contact:     %s\n", lost)
	}
	if r.StopRequestedMS > 0 && !r.Status.Terminal() {
		fmt.Printf("stopping:    asked %s ago (%s); waiting for %s to report it killed\n",
			time.Since(time.UnixMilli(r.StopRequestedMS)).Round(time.Second), r.StopReason, r.Backend)
	}
	fmt.Printf("entrypoint:  %s\n", entrypointText(&r.Request.Entrypoint))
	fmt.Printf("submitted:   %s ago\nduration:    %s\n", age(r.SubmittedMS), duration(r))
	fmt.Printf("attempt:     %d (failures %d, preemptions %d)\n", r.Attempt, r.Failures, r.Preemptions)
	for _, t := range r.Tasks {
		fmt.Println(taskLine(r, &t))
	}
}

// taskLine is a task's line in fray jobs status: state, worker, the
// devices its current attempt holds, and how it ended.
func taskLine(r *jobs.Record, t *jobs.TaskState) string {
	line := fmt.Sprintf("task %d:      %s", t.Index, t.State)
	if t.Worker != "" {
		line += " on " + t.Worker
	}
	a := t.Current()
	if a != nil && len(a.Devices) > 0 {
		kind := r.Request.Resources.Device.Kind
		if kind == "" {
			kind = "devices"
		}
		line += fmt.Sprintf(" [%s %s]", kind, strings.Join(a.Devices, ","))
	}
	if a != nil && a.State.Done() {
		// An attempt whose process never reported (its worker was lost)
		// has no exit code: say why it stopped instead.
		var how []string
		if a.Exited || a.ExitCode != -1 {
			how = append(how, fmt.Sprintf("exit %d", a.ExitCode))
		}
		if a.Error != "" {
			how = append(how, a.Error)
		}
		if len(how) > 0 {
			line += " (" + strings.Join(how, ": ") + ")"
		}
	}
	return line
}

// entrypointText shows an entrypoint as the user wrote it: a command as a
// JSON array (with <, > and & as themselves, not \u003c...), a function by
// name.
func entrypointText(ep *jobs.Entrypoint) string {
	if ep.Func != "" {
		return "func " + ep.Func
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(ep.Argv)
	return strings.TrimSuffix(b.String(), "\n")
}

// checkJobArgs refuses, as a mistake in the command line (exit 2, before
// connecting), an argument that cannot name a job, e.g. "/default/a*".
func checkJobArgs(fs *flag.FlagSet, ids []string) error {
	for _, id := range ids {
		if err := jobs.ValidRef(id); err != nil {
			return usagef(fs, "%s", strings.ReplaceAll(err.Error(), jobs.ErrInvalid.Error()+": ", ""))
		}
	}
	return nil
}
