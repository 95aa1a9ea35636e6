package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"drill/drills"
	"drill/drills/statedb"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// enqueueTxFunc inserts a job inside a transaction.
type enqueueTxFunc func(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) error

// runWorker carries out one drill run.
type runWorker struct {
	river.WorkerDefaults[RunDrillArgs]
	cfg     Config
	sweeper *Sweeper
	enqueue enqueueTxFunc

	mu sync.Mutex
	// backends are kept per drill for the life of the worker: a target
	// may hold what it learnt in memory only (an RDS instance's one-off
	// password) across the snoozes of a run.
	backends map[string]backendPair
}

type backendPair struct {
	src drills.Source
	tgt drills.Target
}

func (w *runWorker) backendsFor(ctx context.Context, spec *drills.Spec) (drills.Source, drills.Target, error) {
	key := spec.Name + "\x00" + spec.Target.Key()
	w.mu.Lock()
	defer w.mu.Unlock()
	if b, ok := w.backends[key]; ok {
		return b.src, b.tgt, nil
	}
	src, tgt, err := w.cfg.Backends(ctx, spec)
	if err != nil {
		return nil, nil, err
	}
	if w.backends == nil {
		w.backends = map[string]backendPair{}
	}
	w.backends[key] = backendPair{src, tgt}
	return src, tgt, nil
}

// Timeout is the drill's own timeout plus time for teardown: the runner
// enforces the drill's deadline itself and then tears down.
func (w *runWorker) Timeout(job *river.Job[RunDrillArgs]) time.Duration {
	if spec := w.cfg.drills().Drill(job.Args.Drill); spec != nil {
		return spec.Timeout + teardownSlack
	}
	return teardownSlack
}

func (w *runWorker) Work(ctx context.Context, job *river.Job[RunDrillArgs]) error {
	args := job.Args
	log := w.cfg.Logger.With("component", "worker", "drill", args.Drill, "job_id", job.ID)
	store := w.cfg.Store
	spec := w.cfg.drills().Drill(args.Drill)
	if spec == nil {
		if args.RunID != 0 {
			_, _ = store.FailUnfinished(ctx, args.RunID, drills.ReasonLocateFailed,
				fmt.Sprintf("drill %q is not in this worker's config %s", args.Drill, w.cfg.drills().Path), w.cfg.Now())
		}
		return river.JobCancel(fmt.Errorf("drill %q is not in the config", args.Drill))
	}
	run, err := w.runOf(ctx, job, spec)
	if err != nil || run == nil {
		return err
	}
	if done, err := w.resumeOrSkip(ctx, job, run); done || err != nil {
		return err
	}
	log = log.With("run_id", run.ID)
	// The run carries out what it recorded when it was queued, not what
	// the config says now: its record is always what ran.
	if spec, err = run.Policy.Spec(spec); err != nil {
		_, _ = store.FailUnfinished(ctx, run.ID, drills.ReasonLocateFailed, err.Error(), w.cfg.Now())
		return river.JobCancel(err)
	}
	src, tgt, err := w.backendsFor(ctx, spec)
	if err != nil {
		_, _ = store.FailUnfinished(ctx, run.ID, drills.ReasonProvisionFailed, "this worker cannot run the drill: "+err.Error(), w.cfg.Now())
		w.notifyFailure(ctx, spec, run.ID)
		return river.JobCancel(err)
	}
	runner := &drills.Runner{Store: store, Logger: w.cfg.Logger.With("component", "runner"), Worker: workerName(), Version: Version,
		HeartbeatEvery: w.cfg.StaleAfter / 6, OnIntent: w.deadMan(spec), Snooze: true}
	run, err = runner.Execute(ctx, run, drills.RunParams{Spec: spec, Source: src, Target: tgt,
		Policy: run.Policy, Trigger: run.Trigger, TriggeredBy: run.TriggeredBy})
	var waiting *drills.Waiting
	if errors.As(err, &waiting) {
		log.Info("run waits for its instance: job snoozed", "after", waiting.After.String())
		return river.JobSnooze(waiting.After) // no worker slot is held while it waits
	}
	if errors.Is(err, drills.ErrRunEnded) {
		return river.JobCancel(err) // the sweeper ended the run meanwhile: its record stands
	}
	if err != nil {
		return err // the store failed: river retries, and the retry ends the run as interrupted
	}
	log.Info("run finished", "status", run.Status, "reason", run.Reason)
	if run.Status == drills.StatusFailed && run.Reason != drills.ReasonInterrupted {
		w.notifyFailure(ctx, spec, run.ID)
	}
	return nil
}

// runOf returns the run a job carries: the one recorded at enqueue time,
// the one it started before it snoozed, or — for a scheduled tick — a new
// one. Nil without an error means the tick is skipped.
func (w *runWorker) runOf(ctx context.Context, job *river.Job[RunDrillArgs], spec *drills.Spec) (*drills.Run, error) {
	store := w.cfg.Store
	if job.Args.RunID != 0 {
		run, err := store.Run(ctx, job.Args.RunID)
		if err != nil {
			return nil, err
		}
		return run, store.SetJob(ctx, run.ID, job.ID)
	}
	if run, err := store.RunByJob(ctx, job.ID); run != nil || err != nil {
		return run, err
	}
	run, err := store.CreateRun(ctx, drills.CreateRunParams{Spec: spec, Policy: drills.PolicyOf(spec, w.cfg.drills().Path, Version),
		Status: drills.StatusQueued, Trigger: job.Args.Trigger, TriggeredBy: "schedule@" + workerName()})
	if errors.Is(err, drills.ErrDrillBusy) {
		w.cfg.Logger.Warn("scheduled run skipped: the drill is still running", "drill", spec.Name, "error", err.Error())
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return run, store.SetJob(ctx, run.ID, job.ID)
}

// resumeOrSkip handles a job whose run was recorded before: queued runs
// go ahead, and so do runs that slept waiting on their instance; finished
// ones are done; a run still marked running is a retry after a crash —
// unless its heartbeat is fresh (another worker still has it), it ends as
// interrupted and its target is destroyed.
func (w *runWorker) resumeOrSkip(ctx context.Context, job *river.Job[RunDrillArgs], run *drills.Run) (bool, error) {
	switch {
	case run.FinishedAt != nil:
		return true, nil
	case run.Status == drills.StatusQueued, run.WaitingUntil != nil:
		return false, nil
	}
	if heartbeat := run.HeartbeatAt; heartbeat != nil && w.cfg.Now().Sub(*heartbeat) < w.cfg.StaleAfter {
		return true, river.JobSnooze(w.cfg.StaleAfter)
	}
	if _, err := w.cfg.Store.FailUnfinished(ctx, run.ID, drills.ReasonInterrupted,
		fmt.Sprintf("interrupted: the worker carrying out the run stopped (attempt %d)", job.Attempt), w.cfg.Now()); err != nil {
		return true, err
	}
	_, err := w.sweeper.SweepRun(ctx, run.ID)
	return true, err
}

// deadMan inserts, with the target's intent, a teardown job at the
// run's deadline plus slack.
func (w *runWorker) deadMan(*drills.Spec) func(context.Context, any, *drills.Run, int64) error {
	return deadManWith(w.enqueue)
}

// DeadMan returns a Runner.OnIntent hook that inserts the dead-man
// teardown job of a target with client, in the intent's transaction.
func DeadMan(client *river.Client[pgx.Tx]) func(context.Context, any, *drills.Run, int64) error {
	return deadManWith(enqueueWith(func() *river.Client[pgx.Tx] { return client }))
}

// enqueueWith inserts jobs with the client client returns, which is asked
// at each insert (a worker client is made after its workers).
func enqueueWith(client func() *river.Client[pgx.Tx]) enqueueTxFunc {
	return func(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) error {
		_, err := client().InsertTx(ctx, tx, args, opts)
		return err
	}
}

func deadManWith(enqueue enqueueTxFunc) func(context.Context, any, *drills.Run, int64) error {
	return func(ctx context.Context, tx any, run *drills.Run, targetID int64) error {
		ptx, ok := tx.(pgx.Tx)
		if !ok {
			return fmt.Errorf("dead-man job: the recorder's transaction is a %T, not the state database's", tx)
		}
		at := run.Deadline.Add(teardownSlack)
		return enqueue(ctx, ptx, TeardownArgs{RunID: run.ID, TargetID: targetID}, &river.InsertOpts{ScheduledAt: at})
	}
}

func (w *runWorker) notifyFailure(ctx context.Context, spec *drills.Spec, runID int64) {
	if err := enqueueNotifications(ctx, w.cfg.Store, w.enqueue, spec, EventFailed, runID); err != nil {
		w.cfg.Logger.Warn("could not queue notifications", "drill", spec.Name, "run_id", runID, "error", err.Error())
	}
}

// enqueueNotifications inserts one notify job per webhook of the drill.
func enqueueNotifications(ctx context.Context, store *statedb.Store, enqueue enqueueTxFunc, spec *drills.Spec, event string, runID int64) error {
	if len(spec.Notify) == 0 {
		return nil
	}
	return pgx.BeginFunc(ctx, store.Pool, func(tx pgx.Tx) error {
		for i := range spec.Notify {
			if err := enqueue(ctx, tx, NotifyArgs{Drill: spec.Name, Webhook: i, Event: event, RunID: runID}, nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// Version is the tool version (with its VCS revision) recorded with runs; set by main.
var Version = "dev"
