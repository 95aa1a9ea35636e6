package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"drill/drills"
	"drill/drills/backends"
	"drill/jobs"

	"github.com/spf13/cobra"
)

type runOpts struct {
	*globalOpts
	name    string
	json    bool
	keep    bool
	enqueue bool
	stdout  io.Writer
	stderr  *os.File
}

func newRunCommand(g *globalOpts) *cobra.Command {
	o := &runOpts{globalOpts: g}
	cmd := &cobra.Command{
		Use:   "run NAME",
		Short: "Run a drill now, in this process",
		Long: `Run a drill now: locate the newest backup, restore it into a throwaway
instance, run the checks, measure RTO and RPO, and tear the instance down.
Progress is shown on a terminal; the result goes to stdout.

` + exitCodesHelp,
		Example: `  drill run orders
  drill run orders --json > result.json
  drill run orders --keep     # leave the restored instance running to inspect it
  drill run orders --enqueue  # let a drill worker run it; prints the run id`,
		Args: exactArgs(1, "NAME: the drill to run (see drill validate for the names)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.name, o.stdout, o.stderr = args[0], cmd.OutOrStdout(), os.Stderr
			return runRun(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print the run as one JSON object")
	cmd.Flags().BoolVar(&o.keep, "keep", false, "keep the restored instance running and print how to connect")
	cmd.Flags().BoolVar(&o.enqueue, "enqueue", false, "queue the run for a drill worker and return at once")
	return cmd
}

func runRun(ctx context.Context, o *runOpts) error {
	cfg, err := o.loadConfig()
	if err != nil {
		return err
	}
	spec := cfg.Drill(o.name)
	if spec == nil {
		return withCode(exitUsage, fmt.Errorf("no drill named %q in %s (drills: %s)", o.name, cfg.Path, drillNames(cfg)))
	}
	terminal := isTerminal(o.stderr)
	log, err := o.logger(o.stderr, terminal)
	if err != nil {
		return err
	}
	if o.enqueue {
		if o.keep {
			return withCode(exitUsage, errors.New("--keep works only for runs in this process, not with --enqueue"))
		}
		return runEnqueue(ctx, o, cfg, spec, log)
	}
	src, tgt, err := backends.For(ctx, spec)
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	store, closeStore, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeStore()

	// Clean up after crashed drills first, and queue a dead-man teardown
	// with this run's target, for a worker to act on should this process die.
	jobs.Version = version
	client, err := jobs.NewInsertClient(store.Pool)
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	jcfg := jobs.Config{Drills: cfg, Store: store, Logger: log.With("component", "sweeper")}
	if rep, err := jobs.NewSweeper(jcfg, nil).Sweep(ctx); err != nil {
		log.Warn("sweep before the run", "error", err.Error())
	} else if len(rep.RunsEnded)+len(rep.Destroyed)+len(rep.OrphansRemoved) > 0 {
		log.Warn("cleaned up after earlier drills", "runs_ended", rep.RunsEnded, "destroyed", rep.Destroyed, "orphans", rep.OrphansRemoved)
	}
	runner := &drills.Runner{Store: store, Logger: log.With("component", "runner"), Worker: whoAmI(),
		OnIntent: jobs.DeadMan(client)}
	if terminal {
		runner.Events = newProgress(o.stderr).event
	}
	run, err := runner.Run(ctx, drills.RunParams{Spec: spec, Source: src, Target: tgt,
		Policy: drills.PolicyOf(spec, cfg.Path, version), Trigger: drills.TriggerManual, TriggeredBy: whoAmI(), Keep: o.keep})
	if run != nil {
		if o.json {
			if err := writeJSON(o.stdout, run); err != nil {
				return withCode(exitUnavailable, err)
			}
		} else {
			printRun(o.stdout, run)
		}
		if o.keep && run.Target != nil && run.Target.State == drills.TargetKept {
			fmt.Fprintf(o.stderr, "\nThe restored instance is still running. Connect with:\n  %s\n",
				tgt.ConnectHint(run.Target.Instance(run)))
		}
	}
	if errors.Is(err, drills.ErrDrillBusy) {
		return withCode(exitUnavailable, fmt.Errorf("%w; wait for it to finish (drill history %s)", err, spec.Name))
	}
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	switch {
	case run.Status == drills.StatusPassed:
		return nil
	case run.Reason == drills.ReasonInterrupted:
		return withCode(exitInterrupted, errors.New("interrupted; the instance was torn down"))
	default:
		return withCode(exitFailed, fmt.Errorf("drill %s failed (%s): %s", run.Drill, run.Reason, run.Error))
	}
}

func drillNames(cfg *drills.Config) string {
	names := make([]string, 0, len(cfg.Drills))
	for _, d := range cfg.Drills {
		names = append(names, d.Name)
	}
	return strings.Join(names, ", ")
}

// exactArgs is cobra.ExactArgs with a message that says what is expected.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return withCode(exitUsage, fmt.Errorf("%s: want %s (see %s --help)", cmd.CommandPath(), what, cmd.CommandPath()))
		}
		return nil
	}
}

// runEnqueue records a queued run and its job, prints the run id and returns.
func runEnqueue(ctx context.Context, o *runOpts, cfg *drills.Config, spec *drills.Spec, log *slog.Logger) error {
	store, closeStore, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeStore()
	client, err := jobs.NewInsertClient(store.Pool)
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	run, err := jobs.Enqueue(ctx, store, client, spec, drills.PolicyOf(spec, cfg.Path, version), drills.TriggerManual, whoAmI())
	if errors.Is(err, drills.ErrDrillBusy) {
		return withCode(exitUnavailable, fmt.Errorf("not queued: %w", err))
	}
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	if o.json {
		return writeJSON(o.stdout, map[string]any{"id": run.ID, "drill": run.Drill, "status": run.Status})
	}
	fmt.Fprintf(o.stdout, "queued run %d of drill %s; a drill worker will carry it out (drill show %d)\n", run.ID, run.Drill, run.ID)
	return nil
}
