package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"drill/drills"
	"drill/drills/backends"

	"github.com/spf13/cobra"
)

type discardOpts struct {
	*globalOpts
	id     int64
	json   bool
	stdout io.Writer
}

func newDiscardCommand(g *globalOpts) *cobra.Command {
	o := &discardOpts{globalOpts: g}
	cmd := &cobra.Command{
		Use:   "discard RUN_ID",
		Short: "Tear down the instance a run kept (drill run --keep) now",
		Long: `Tear down the instance of a finished run that drill run --keep left
running, and record it as destroyed. The sweeper does the same once the
instance's keep time is over.`,
		Example: "  drill discard 42",
		Args:    exactArgs(1, "RUN_ID: the run whose kept instance to remove"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return withCode(exitUsage, fmt.Errorf("RUN_ID %q: want a number", args[0]))
			}
			o.id, o.stdout = id, cmd.OutOrStdout()
			return runDiscard(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print what was done as JSON")
	return cmd
}

func runDiscard(ctx context.Context, o *discardOpts) error {
	s, err := o.open(ctx, sessionOpts{})
	if err != nil {
		return err
	}
	defer s.close()
	run, err := s.store.Run(ctx, o.id)
	if errors.Is(err, drills.ErrRunNotFound) {
		return withCode(exitUsage, fmt.Errorf("no run %d (see drill history)", o.id))
	}
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	t := run.Target
	if t == nil || t.State != drills.TargetKept {
		state := "no instance"
		if t != nil {
			state = "its instance is " + string(t.State)
		}
		return withCode(exitUsage, fmt.Errorf("run %d kept no instance (%s)", o.id, state))
	}
	tgt, err := backends.Target(run.Policy.Target)
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	in := t.Instance(run)
	if err := tgt.Destroy(ctx, in); err != nil {
		_ = s.store.SetTargetState(ctx, t.ID, in, drills.TargetDestroyFailed, time.Now(), err.Error())
		return withCode(exitUnavailable, fmt.Errorf("discard %s: %w", t.InstanceID, err))
	}
	if err := s.store.SetTargetState(ctx, t.ID, in, drills.TargetDestroyed, time.Now(), ""); err != nil {
		return withCode(exitUnavailable, err)
	}
	if o.json {
		return writeJSON(o.stdout, map[string]any{"run_id": run.ID, "instance": t.InstanceID, "state": drills.TargetDestroyed})
	}
	fmt.Fprintf(o.stdout, "discarded %s %s of run %d\n", t.Type, t.InstanceID, run.ID)
	return nil
}
