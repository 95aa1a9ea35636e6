package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"drill/drills"
	"drill/jobs"

	"github.com/spf13/cobra"
)

type scheduleOpts struct {
	*globalOpts
	json   bool
	stdout io.Writer
}

// scheduleJSON is one drill in `drill schedule --json`.
type scheduleJSON struct {
	Drill         string      `json:"drill"`
	Schedule      string      `json:"schedule"`
	Timezone      string      `json:"schedule_timezone,omitempty"`
	NextRunAt     *string     `json:"next_run_at"`
	LastRun       *lastRunRef `json:"last_run"`
	LastSuccessAt *string     `json:"last_success_at"`
	Overdue       bool        `json:"overdue"`
}

type lastRunRef struct {
	ID         int64   `json:"id"`
	Status     string  `json:"status"`
	Reason     string  `json:"reason,omitempty"`
	StartedAt  *string `json:"started_at"`
	FinishedAt *string `json:"finished_at"`
}

func newScheduleCommand(g *globalOpts) *cobra.Command {
	o := &scheduleOpts{globalOpts: g}
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Show each drill's schedule, next run, last run and whether it is overdue",
		Long: `Show each drill's schedule, next run, last run and last success. A drill is
overdue when its last success (or, if it never passed, its first run) is older
than one schedule period plus overdue_grace (default 1 day).`,
		Example: "  drill schedule\n  drill schedule --json | jq '.[] | select(.overdue)'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.stdout = cmd.OutOrStdout()
			return runSchedule(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print a JSON array")
	return cmd
}

func runSchedule(ctx context.Context, o *scheduleOpts) error {
	s, err := o.open(ctx, sessionOpts{needConfig: true})
	if err != nil {
		return err
	}
	defer s.close()
	cfg, store := s.cfg, s.store
	statuses, err := jobs.ScheduleStatuses(ctx, store, cfg, time.Now())
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	out := make([]scheduleJSON, 0, len(statuses))
	for _, st := range statuses {
		j := scheduleJSON{Drill: st.Drill, Schedule: st.Schedule, Timezone: st.Timezone, NextRunAt: drills.OptRFC3339(st.NextRunAt),
			LastSuccessAt: drills.OptRFC3339(st.LastSuccessAt), Overdue: st.Overdue}
		if r := st.LastRun; r != nil {
			j.LastRun = &lastRunRef{ID: r.ID, Status: string(r.Status), Reason: string(r.Reason), StartedAt: drills.OptRFC3339(r.StartedAt), FinishedAt: drills.OptRFC3339(r.FinishedAt)}
		}
		out = append(out, j)
	}
	if o.json {
		return writeJSON(o.stdout, out)
	}
	tw := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DRILL\tSCHEDULE\tNEXT RUN\tLAST RUN\tLAST SUCCESS\t")
	for _, j := range out {
		last := "-"
		if j.LastRun != nil {
			last = fmt.Sprintf("run %d %s", j.LastRun.ID, j.LastRun.Status)
		}
		overdue := ""
		if j.Overdue {
			overdue = "OVERDUE"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.Drill, orDash(j.Schedule), orDash(deref(j.NextRunAt)), last, orDash(deref(j.LastSuccessAt)), overdue)
	}
	return tw.Flush()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
