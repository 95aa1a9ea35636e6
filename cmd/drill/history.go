package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	rows := [][]string{{"ID", "DRILL", "STATUS", "STARTED", "RTO", "RPO", "REASON", "BACKUP"}}
	for _, r := range runs {
		started := "-"
		if r.StartedAt != nil {
			started = r.StartedAt.UTC().Format("2006-01-02 15:04")
		}
		backup := "-"
		if r.Backup != nil {
			backup = safe(r.Backup.ID)
		}
		status := string(r.Status)
		if r.Seal != nil && r.Seal.Integrity == drills.IntegrityAltered {
			status += " (ALTERED)"
		}
		reason := string(r.Reason)
		if reason == "" {
			reason = "-"
		}
		rows = append(rows, []string{strconv.FormatInt(r.ID, 10), r.Drill, status, started, short(r.RTO, r.RTOMet), shortRPO(r), reason, backup})
	}
	width := 0 // not a terminal: every column whole
	if f, ok := o.stdout.(*os.File); ok && isTerminal(f) {
		width = lookOf(f).width
	}
	printTable(o.stdout, rows, width)
	return nil
}

// printTable writes rows as columns two spaces apart. With a width, the
// last column (a path) is cut to fit it, keeping its end ("…/shop-1.dump"),
// or left out when less than 16 columns are left for it.
func printTable(w io.Writer, rows [][]string, width int) {
	cols := len(rows[0])
	widths := make([]int, cols)
	for _, r := range rows {
		for i, c := range r[:cols-1] {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	used := 0
	for _, n := range widths[:cols-1] {
		used += n + 2
	}
	room, longest := width-used, 0
	for _, r := range rows {
		longest = max(longest, utf8.RuneCountInString(r[cols-1]))
	}
	drop := width > 0 && longest > room && room < 16
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r[:cols-1] {
			b.WriteString(c + strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
		}
		last := []rune(r[cols-1])
		switch {
		case drop:
			last = nil
		case width > 0 && len(last) > room:
			last = append([]rune("…"), last[len(last)-room+1:]...)
		}
		b.WriteString(string(last))
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// shortRPO is the RPO column: missed without a verified copy says so.
func shortRPO(r *drills.Run) string {
	if rpoUnproven(r) {
		return dur(*r.RPO) + " (not verified)"
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
