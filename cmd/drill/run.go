package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"drill/drills"
	"drill/drills/backends"
	"drill/drills/local"
	"drill/drills/pgdump"
	"drill/drills/statedb"
	"drill/jobs"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/spf13/cobra"
)

type runOpts struct {
	*globalOpts
	name    string
	json    bool
	keep    time.Duration
	enqueue bool
	all     bool
	tag     string
	jobs    int
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
  drill run orders --enqueue  # let a drill worker run it; prints the run id
  drill run --all --parallel 2 # every drill, two at a time, with a summary (before an audit)
  drill run --tag pci         # every drill with tags: [pci]`,
		Args: func(cmd *cobra.Command, args []string) error {
			if o.all || o.tag != "" {
				if len(args) > 0 {
					return withCode(exitUsage, errors.New("drill run: give a NAME, or --all or --tag, not both"))
				}
				return nil
			}
			if len(args) == 2 && cmd.Flags().Changed("keep") {
				if _, err := time.ParseDuration(args[1]); err == nil {
					return withCode(exitUsage, fmt.Errorf("drill run: --keep takes its duration after an equals sign: drill run %s --keep=%s", args[0], args[1]))
				}
			}
			return exactArgs(1, "NAME: the drill to run (see drill validate for the names), or --all")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.stdout, o.stderr = cmd.OutOrStdout(), os.Stderr
			if cmd.Flags().Changed("keep") && o.keep <= 0 {
				return withCode(exitUsage, fmt.Errorf("--keep=%s: keep the instance for a positive duration (--keep alone: %s; --keep=30m)", o.keep, drills.DefaultKeep))
			}
			if o.all || o.tag != "" {
				return runMany(cmd.Context(), o)
			}
			o.name = args[0]
			return runRun(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.all, "all", false, "run every drill of the config, with a summary; exit 1 if any failed")
	cmd.Flags().StringVar(&o.tag, "tag", "", "run every drill whose tags include TAG")
	cmd.Flags().IntVar(&o.jobs, "parallel", 1, "with --all or --tag: how many drills run at a time")
	cmd.Flags().BoolVar(&o.json, "json", false, "print the run as one JSON object")
	cmd.Flags().DurationVar(&o.keep, "keep", 0, "keep the restored instance running for a while (--keep: 1h; --keep=30m), print how to connect; the sweeper removes it afterwards (drill discard RUN_ID sooner)")
	cmd.Flags().Lookup("keep").NoOptDefVal = drills.DefaultKeep.String()
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
		if o.keep != 0 {
			return withCode(exitUsage, errors.New("--keep works only for runs in this process, not with --enqueue"))
		}
		return runEnqueue(ctx, o, cfg, spec, log)
	}
	src, tgt, err := backends.For(ctx, spec)
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	store, client, closeStore, err := openForRuns(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer closeStore()
	runner := &drills.Runner{Store: store, Logger: o.runnerLogger(log, terminal), Worker: whoAmI(), Version: fullVersion(),
		OnIntent: jobs.DeadMan(client)}
	if terminal {
		runner.Events = newProgress(o.stderr).event
	}
	run, err := runner.Run(ctx, drills.RunParams{Spec: spec, Source: src, Target: tgt,
		Policy: drills.PolicyOf(spec, cfg.Path, version), Trigger: drills.TriggerManual, TriggeredBy: whoAmI(), Keep: o.keep > 0, KeepFor: o.keep})
	if s, ok := tgt.(interface{ Settle(context.Context) }); ok {
		s.Settle(context.WithoutCancel(ctx)) // this process is about to exit
	}
	if run != nil {
		if o.json {
			if err := writeJSON(o.stdout, run); err != nil {
				return withCode(exitUnavailable, err)
			}
		} else {
			l := lookOf(o.stdout)
			// Progress on the terminal showed each check as it ran; when the
			// result goes to the same terminal, they are not shown twice.
			f, isFile := o.stdout.(*os.File)
			l.checksShown = terminal && isFile && isTerminal(f)
			printRun(o.stdout, run, l)
		}
		if o.keep > 0 && run.Target != nil && run.Target.State == drills.TargetKept {
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
	case needsOtherBinaries(run):
		return withCode(exitUnavailable, fmt.Errorf("drill %s could not be carried out here (%s): %s", run.Drill, run.Reason, run.Error))
	default:
		return withCode(exitFailed, fmt.Errorf("drill %s failed (%s): %s", run.Drill, run.Reason, run.Error))
	}
}

// openForRuns opens the state database and a river client for runs in
// this process: their dead-man teardown jobs are queued for a worker to
// act on should this process die. With sweep, it first cleans up after
// crashed drills.
func openForRuns(ctx context.Context, cfg *drills.Config, log *slog.Logger, sweep bool) (*statedb.Store, *river.Client[pgx.Tx], func(), error) {
	store, closeStore, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, nil, nil, err
	}
	if sweep { // runs are finished in this process
		if err := requireSealingKey(ctx, store); err != nil {
			closeStore()
			return nil, nil, nil, err
		}
	}
	jobs.Version = fullVersion()
	client, err := jobs.NewInsertClient(store.Pool)
	if err != nil {
		closeStore()
		return nil, nil, nil, withCode(exitUnavailable, err)
	}
	if sweep {
		jcfg := jobs.Config{Drills: cfg, Store: store, Logger: log.With("component", "sweeper")}
		if rep, err := jobs.NewSweeper(jcfg, nil).Sweep(ctx); err != nil {
			log.Warn("sweep before the run", "error", err.Error())
		} else if len(rep.RunsEnded)+len(rep.Destroyed)+len(rep.OrphansRemoved) > 0 {
			log.Warn("cleaned up after earlier drills", "runs_ended", rep.RunsEnded, "destroyed", rep.Destroyed, "orphans", rep.OrphansRemoved)
		}
	}
	return store, client, closeStore, nil
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

// needsOtherBinaries tells a run that failed because its backup needs
// PostgreSQL binaries this host does not have (another major version, a
// newer pg_restore): it could not be carried out here (exit 3).
func needsOtherBinaries(run *drills.Run) bool {
	return run.Reason == drills.ReasonProvisionFailed && strings.Contains(run.Error, local.ErrNoBinaries.Error()) ||
		(run.Reason == drills.ReasonLocateFailed || run.Reason == drills.ReasonRestoreFailed) && strings.Contains(run.Error, pgdump.NewerArchive)
}
