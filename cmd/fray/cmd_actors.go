package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/frayhq/fray/actors"
)

func init() {
	register(command{name: "actors", summary: "list named actors: name, class, host, state, restarts, calls served, age", run: runActors})
}

func runActors(ctx context.Context, args []string) error {
	fs := newFlags("actors", "[flags]")
	ns := fs.String("namespace", "", "only this namespace (default: every namespace)")
	asJSON := fs.Bool("json", false, "print the actor records as one JSON array")
	spec := clusterFlag(fs)
	if _, err := parsePositional(fs, args, 0, 0, ""); err != nil {
		return err
	}
	c, err := connect(ctx, *spec)
	if err != nil {
		return err
	}
	defer c.Close()
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	recs, err := c.ListActors(lctx, *ns)
	if err != nil {
		return err
	}
	if *asJSON {
		if recs == nil {
			recs = []*actors.Record{}
		}
		return printJSON(recs)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCLASS\tHOST\tSTATE\tRESTARTS\tCALLS\tAGE")
	now := time.Now()
	for _, r := range recs {
		host := r.Host
		if host == "" {
			host = "-"
		}
		state := r.State
		if r.Error != "" && r.State != actors.StateReady {
			state += " (" + r.Error + ")"
		}
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%d\t%d\t%s\n", r.Namespace, r.Name, r.Class, host, state,
			r.Restarts, r.Calls, actorAge(now.Sub(time.UnixMilli(r.CreatedMS))))
	}
	return tw.Flush()
}

func actorAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
