package main

import (
	"context"
	"fmt"
	"io"

	"drill/jobs"

	"github.com/spf13/cobra"
)

type sweepOpts struct {
	*globalOpts
	json   bool
	stdout io.Writer
}

func newSweepCommand(g *globalOpts) *cobra.Command {
	o := &sweepOpts{globalOpts: g}
	cmd := &cobra.Command{
		Use:   "sweep",
		Short: "Remove what crashed drills left behind (workers do this every 10 minutes)",
		Long: `Ends runs whose process died (no heartbeat) or that are past their deadline,
destroys every instance the state database knows whose run is over, and
destroys instances carrying this installation's marks that it has no record
of. Instances without drill's marks are never touched.`,
		Example: "  drill sweep\n  drill sweep --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.stdout = cmd.OutOrStdout()
			return runSweep(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print what was done as JSON")
	return cmd
}

func runSweep(ctx context.Context, o *sweepOpts) error {
	s, err := o.open(ctx, sessionOpts{})
	if err != nil {
		return err
	}
	defer s.close()
	cfg, log, store := s.cfg, s.log, s.store
	if err := requireSealingKey(ctx, store); err != nil {
		return err
	}
	client, err := jobs.NewInsertClient(store.Pool)
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	rep, err := jobs.NewSweeper(jobs.Config{Drills: cfg, Store: store, Logger: log}, client).Sweep(ctx)
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	if o.json {
		return writeJSON(o.stdout, rep)
	}
	fmt.Fprintf(o.stdout, "runs ended: %d, instances destroyed: %d, orphans removed: %d\n", len(rep.RunsEnded), len(rep.Destroyed), len(rep.OrphansRemoved))
	for _, id := range rep.Destroyed {
		fmt.Fprintln(o.stdout, "  destroyed", id)
	}
	for _, id := range rep.OrphansRemoved {
		fmt.Fprintln(o.stdout, "  orphan removed", id)
	}
	for _, d := range rep.Overdue {
		fmt.Fprintln(o.stdout, "  overdue:", d)
	}
	for _, e := range rep.Errors {
		fmt.Fprintln(o.stdout, "  error:", e)
	}
	if len(rep.Errors) > 0 {
		return withCode(exitFailed, fmt.Errorf("sweep finished with %d errors", len(rep.Errors)))
	}
	return nil
}
