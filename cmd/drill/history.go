package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"drill/drills"
	"drill/drills/statedb"

	"github.com/spf13/cobra"
)

type historyOpts struct {
	*globalOpts
	drill  string
	limit  int
	json   bool
	stdout io.Writer
}

func newHistoryCommand(g *globalOpts) *cobra.Command {
	o := &historyOpts{globalOpts: g}
	cmd := &cobra.Command{
		Use:   "history [NAME]",
		Short: "List past runs, newest first",
		Example: `  drill history
  drill history orders --limit 10
  drill history --json | jq '.[] | select(.status == "failed")'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.drill = args[0]
			}
			o.stdout = cmd.OutOrStdout()
			return runHistory(cmd.Context(), o)
		},
	}
	cmd.Flags().IntVar(&o.limit, "limit", 20, "how many runs")
	cmd.Flags().BoolVar(&o.json, "json", false, "print a JSON array of runs")
	return cmd
}

func runHistory(ctx context.Context, o *historyOpts) error {
	if o.limit < 1 {
		return withCode(exitUsage, fmt.Errorf("--limit must be at least 1"))
	}
	s, err := o.open(ctx, sessionOpts{historyOnly: true})
	if err != nil {
		return err
	}
	defer s.close()
	store := s.store
	runs, err := store.Runs(ctx, statedb.RunFilter{Drill: o.drill, Limit: o.limit})
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	if o.json {
		out := make([]drills.RunJSON, 0, len(runs))
		for _, r := range runs {
			out = append(out, r.JSON())
		}
		return writeJSON(o.stdout, out)
	}
	if len(runs) == 0 && o.drill != "" && s.cfg != nil && !s.cfg.HistoryOnly && s.cfg.Drill(o.drill) == nil {
		return withCode(exitUsage, fmt.Errorf("no drill named %q has runs, and the config has none by that name", o.drill))
	}
	if len(runs) == 0 {
		fmt.Fprintln(o.stdout, "no runs yet: start one with drill run NAME")
		return nil
	}
	tw := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDRILL\tSTATUS\tSTARTED\tRTO\tRPO\tBACKUP\tREASON")
	for _, r := range runs {
		started := "-"
		if r.StartedAt != nil {
			started = r.StartedAt.UTC().Format(time.RFC3339)
		}
		backup := "-"
		if r.Backup != nil {
			backup = r.Backup.ID
		}
		status := string(r.Status)
		if r.Seal != nil && r.Seal.Integrity == drills.IntegrityAltered {
			status += " (ALTERED)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Drill, status, started,
			short(r.RTO, r.RTOMet), shortRPO(r), backup, r.Reason)
	}
	return tw.Flush()
}

// shortRPO is the RPO column: missed without a verified copy says so.
func shortRPO(r *drills.Run) string {
	if rpoUnproven(r) {
		return dur(*r.RPO) + " (missed: not verified)"
	}
	return short(r.RPO, r.RPOMet)
}

func short(d *time.Duration, met *bool) string {
	if d == nil {
		return "-"
	}
	s := dur(*d)
	if met != nil && !*met {
		s += " (missed)"
	}
	return s
}
