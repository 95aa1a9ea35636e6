package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"drill/drills"
	"drill/drills/backends"
	"drill/drills/statedb"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// Defaults of the worker.
const (
	DefaultSweepEvery = 10 * time.Minute
	DefaultStaleAfter = time.Minute
	// teardownSlack is added to a drill's timeout for the job's own
	// timeout and the dead-man's schedule: teardown runs after the deadline.
	teardownSlack = 15 * time.Minute
)

// Config configures the workers of one process.
type Config struct {
	Drills *drills.Config
	// Live, when set, is the config in force, replaced on reload; Drills
	// is then the config the process started with.
	Live   *drills.LiveConfig
	Store  *statedb.Store
	Logger *slog.Logger
	// Concurrency is how many drills this process runs at once (default 2).
	Concurrency int
	// SweepEvery is how often the sweeper runs (default 10m); it also runs at start.
	SweepEvery time.Duration
	// StaleAfter is how long a running run may go without a heartbeat
	// before the sweeper ends it as interrupted (default 1m).
	StaleAfter time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// HTTPClient delivers webhooks (default: 10s timeout).
	HTTPClient HTTPDoer
	// Backends builds a drill's Source and Target (default backends.For).
	Backends func(ctx context.Context, spec *drills.Spec) (drills.Source, drills.Target, error)
}

// drills is the config in force.
func (c *Config) drills() *drills.Config {
	if c.Live != nil {
		return c.Live.Get()
	}
	return c.Drills
}

func (c *Config) defaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 2
	}
	if c.SweepEvery <= 0 {
		c.SweepEvery = DefaultSweepEvery
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = DefaultStaleAfter
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.HTTPClient == nil {
		c.HTTPClient = defaultHTTPClient()
	}
	if c.Backends == nil {
		c.Backends = backends.For
	}
}

// NewWorkerClient returns a river client that runs drills: their
// schedules, the sweeper, dead-man teardowns and notifications.
func NewWorkerClient(cfg Config) (*river.Client[pgx.Tx], error) {
	cfg.defaults()
	workers := river.NewWorkers()
	var client *river.Client[pgx.Tx]
	enqueue := enqueueWith(func() *river.Client[pgx.Tx] { return client }) // made below, after its workers
	sw := &Sweeper{Config: cfg, enqueueTx: enqueue}
	river.AddWorker(workers, &runWorker{cfg: cfg, sweeper: sw, enqueue: enqueue})
	river.AddWorker(workers, &teardownWorker{cfg: cfg, sweeper: sw})
	river.AddWorker(workers, &sweepWorker{sweeper: sw})
	river.AddWorker(workers, &staleCheckWorker{sweeper: sw})
	river.AddWorker(workers, &notifyWorker{cfg: cfg})
	periodic, err := PeriodicJobs(cfg.Drills, cfg.SweepEvery, cfg.StaleAfter)
	if err != nil {
		return nil, err
	}
	client, err = river.NewClient(riverpgxv5.New(cfg.Store.Pool), &river.Config{
		Queues: map[string]river.QueueConfig{
			QueueDrills:        {MaxWorkers: cfg.Concurrency},
			river.QueueDefault: {MaxWorkers: 4},
		},
		Workers:      workers,
		PeriodicJobs: periodic,
		Logger:       cfg.Logger.With("component", "river"),
		// A worker that dies leaves its job "running": river hands it to
		// another worker after this long, which then ends the run as
		// interrupted (the sweeper usually has already). It must exceed
		// the longest drill, or a live drill would be taken over.
		RescueStuckJobsAfter: longestTimeout(cfg.Drills) + 2*teardownSlack,
		JobTimeout:           -1, // per job: see each worker's Timeout
		ID:                   workerName(),
	})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return client, nil
}

// NewInsertClient returns a river client that only inserts jobs.
func NewInsertClient(pool *pgxpool.Pool) (*river.Client[pgx.Tx], error) {
	return river.NewClient(riverpgxv5.New(pool), &river.Config{})
}

func longestTimeout(cfg *drills.Config) time.Duration {
	longest := drills.DefaultTimeout
	for _, d := range cfg.Drills {
		longest = max(longest, d.Timeout)
	}
	return longest
}

// workerName is host/pid, for the run record and river's client id.
func workerName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

// Enqueue records a queued run and inserts its job in one transaction.
// It fails with drills.ErrDrillBusy while the drill has a queued or
// running run.
func Enqueue(ctx context.Context, store *statedb.Store, client *river.Client[pgx.Tx], spec *drills.Spec, policy drills.Policy, trigger drills.Trigger, who string) (*drills.Run, error) {
	var run *drills.Run
	err := pgx.BeginFunc(ctx, store.Pool, func(tx pgx.Tx) error {
		var err error
		run, err = store.CreateRunTx(ctx, tx, drills.CreateRunParams{Spec: spec, Policy: policy, Status: drills.StatusQueued, Trigger: trigger, TriggeredBy: who})
		if err != nil {
			return err
		}
		res, err := client.InsertTx(ctx, tx, RunDrillArgs{Drill: spec.Name, RunID: run.ID, Trigger: trigger}, nil)
		if err != nil {
			return err
		}
		if res.UniqueSkippedAsDuplicate {
			return fmt.Errorf("%w: job %d of drill %s", drills.ErrDrillBusy, res.Job.ID, spec.Name)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, drills.ErrDrillBusy) {
			return nil, err
		}
		return nil, fmt.Errorf("enqueue %s: %w", spec.Name, err)
	}
	return run, nil
}
