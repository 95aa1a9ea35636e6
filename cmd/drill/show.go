package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"drill/drills"

	"github.com/spf13/cobra"
)

type showOpts struct {
	*globalOpts
	id     int64
	json   bool
	stdout io.Writer
}

func newShowCommand(g *globalOpts) *cobra.Command {
	o := &showOpts{globalOpts: g}
	cmd := &cobra.Command{
		Use:     "show RUN_ID",
		Short:   "Show one run: phases, checks, RTO and RPO",
		Example: "  drill show 42\n  drill show 42 --json",
		Args:    exactArgs(1, "RUN_ID: a run id from drill history"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id < 1 {
				return withCode(exitUsage, fmt.Errorf("run id %q: want a positive number from drill history", args[0]))
			}
			o.id, o.stdout = id, cmd.OutOrStdout()
			return runShow(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print the run as one JSON object")
	return cmd
}

func runShow(ctx context.Context, o *showOpts) error {
	s, err := o.open(ctx, sessionOpts{historyOnly: true})
	if err != nil {
		return err
	}
	defer s.close()
	store := s.store
	run, err := store.Run(ctx, o.id)
	if errors.Is(err, drills.ErrRunNotFound) {
		return withCode(exitUsage, fmt.Errorf("no run %d (see drill history)", o.id))
	}
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	if o.json {
		return writeJSON(o.stdout, run)
	}
	printRun(o.stdout, run, lookOf(o.stdout))
	return nil
}
