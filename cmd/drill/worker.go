package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"drill/jobs"

	"github.com/spf13/cobra"
)

type workerOpts struct {
	*globalOpts
	concurrency int
	grace       time.Duration
	sweepEvery  time.Duration
	staleAfter  time.Duration
}

func newWorkerCommand(g *globalOpts) *cobra.Command {
	o := &workerOpts{globalOpts: g}
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run scheduled and queued drills until SIGINT/SIGTERM",
		Long: `Run river workers: each drill with a schedule runs on it, runs queued with
drill run --enqueue are picked up, and the sweeper removes whatever a crashed
drill left behind (at start and every --sweep-every). Run several workers on
several hosts against one state database: each scheduled tick runs once, and
a drill never runs twice at the same time.

On SIGINT/SIGTERM the worker stops taking drills, gives running drills
--shutdown-grace to finish, then interrupts them (they are torn down and
recorded as interrupted).`,
		Example: "  drill worker --config /etc/drill/drill.yaml\n  drill worker --concurrency 4",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWorker(cmd.Context(), o)
		},
	}
	o.addFlags(cmd)
	return cmd
}

// addFlags adds the worker's flags (drill worker, drill serve).
func (o *workerOpts) addFlags(cmd *cobra.Command) {
	cmd.Flags().IntVar(&o.concurrency, "concurrency", 2, "drills this process runs at once")
	cmd.Flags().DurationVar(&o.grace, "shutdown-grace", 30*time.Second, "on SIGTERM, how long running drills may go on before they are interrupted")
	cmd.Flags().DurationVar(&o.sweepEvery, "sweep-every", jobs.DefaultSweepEvery, "how often the sweeper runs")
	cmd.Flags().DurationVar(&o.staleAfter, "stale-after", jobs.DefaultStaleAfter, "a running drill without a heartbeat for this long is ended as interrupted")
}

// validate checks the worker's flags.
func (o *workerOpts) validate() error {
	if o.concurrency < 1 || o.staleAfter < 6*time.Second || o.sweepEvery < time.Second {
		return withCode(exitUsage, errors.New("--concurrency must be at least 1, --stale-after at least 6s, --sweep-every at least 1s"))
	}
	return nil
}

// jobsConfig is the workers' configuration for a session.
func (o *workerOpts) jobsConfig(s *session) jobs.Config {
	return jobs.Config{Drills: s.cfg, Live: s.live, Store: s.store, Logger: s.log, Concurrency: o.concurrency, SweepEvery: o.sweepEvery, StaleAfter: o.staleAfter}
}

func runWorker(ctx context.Context, o *workerOpts) error {
	if err := o.validate(); err != nil {
		return err
	}
	s, err := o.open(ctx, sessionOpts{needConfig: true})
	if err != nil {
		return err
	}
	defer s.close()
	cfg, log := s.cfg, s.log
	if err := requireSealingKey(ctx, s.store); err != nil {
		return err
	}
	jobs.Version = fullVersion()
	client, err := jobs.NewWorkerClient(o.jobsConfig(s))
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	// The client gets a context of its own: a signal starts the graceful
	// stop below rather than cancelling running drills at once.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return withCode(exitUnavailable, fmt.Errorf("start workers: %w", err))
	}
	scheduled := 0
	for _, d := range cfg.Drills {
		if d.Schedule != "" {
			scheduled++
		}
	}
	log.Info("worker started", "drills", len(cfg.Drills), "scheduled", scheduled, "concurrency", o.concurrency)
	watchConfig(ctx, s.live, log, reschedule(client, o, log))
	return stopWorkers(client, o.grace, log)
}

// stopWorkers stops taking drills, gives running ones the grace period,
// then cancels them: they tear down and are recorded as interrupted.
func stopWorkers(client *river.Client[pgx.Tx], grace time.Duration, log *slog.Logger) error {
	log.Info("stopping: no new drills; running drills get the grace period", "grace", grace.String())
	graceCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := client.Stop(graceCtx); err == nil {
		log.Info("worker stopped")
		return nil
	}
	log.Warn("grace period over: interrupting running drills (they are torn down)")
	tearCtx, cancelTear := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancelTear()
	if err := client.StopAndCancel(tearCtx); err != nil {
		return withCode(exitUnavailable, fmt.Errorf("stop workers: %w", err))
	}
	log.Info("worker stopped")
	return nil
}
