package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"drill/drills"
	"drill/drills/backends"
	"drill/drills/statedb"

	"github.com/jackc/pgx/v5"

	"github.com/riverqueue/river"
)

// Sweeper finds what crashed or hung drills left behind and removes it:
//   - runs still marked running whose heartbeat stopped (interrupted) or
//     that are past their deadline (timeout) are ended;
//   - every target the store knows whose run is over is destroyed;
//   - every instance carrying the tool's marks for this state database that
//     the store does not know is destroyed.
//
// It never touches an instance without the tool's marks.
type Sweeper struct {
	Config
	enqueueTx enqueueTxFunc
	cancelJob func(ctx context.Context, id int64) error

	targetsOnce sync.Once
	byType      map[string][]drills.Target
}

// NewSweeper returns a sweeper; client (may be nil) queues overdue notices.
func NewSweeper(cfg Config, client *river.Client[pgx.Tx]) *Sweeper {
	cfg.defaults()
	s := &Sweeper{Config: cfg}
	if client != nil {
		s.enqueueTx = enqueueWith(func() *river.Client[pgx.Tx] { return client })
		s.cancelJob = func(ctx context.Context, id int64) error {
			_, err := client.JobCancel(ctx, id)
			return err
		}
	}
	return s
}

// SweepReport says what one sweep did.
type SweepReport struct {
	RunsEnded      []int64  `json:"runs_ended"`
	Destroyed      []string `json:"destroyed"`
	OrphansRemoved []string `json:"orphans_removed"`
	Overdue        []string `json:"overdue"`
	Errors         []string `json:"errors"`
}

// deadlineGrace is how long past its deadline a run may still be tearing
// down before the sweeper ends it as timed out.
const deadlineGrace = 2 * time.Minute

// Sweep runs one pass.
func (s *Sweeper) Sweep(ctx context.Context) (SweepReport, error) {
	var rep SweepReport
	now := s.Now()
	if err := s.endDeadRuns(ctx, now, &rep); err != nil {
		return rep, err
	}
	targets, err := s.Store.TargetsToSweep(ctx)
	if err != nil {
		return rep, err
	}
	for _, t := range targets {
		if err := s.destroy(ctx, t); err != nil {
			rep.Errors = append(rep.Errors, err.Error())
		} else {
			rep.Destroyed = append(rep.Destroyed, t.Record.InstanceID)
		}
	}
	s.removeOrphans(ctx, &rep)
	s.checkOverdue(ctx, &rep)
	return rep, nil
}

// StaleCheck is the cheap part of Sweep: it ends dead and lost runs and
// destroys the instances of the runs it ended, without scanning targets
// for orphans.
func (s *Sweeper) StaleCheck(ctx context.Context) (SweepReport, error) {
	var rep SweepReport
	if err := s.endDeadRuns(ctx, s.Now(), &rep); err != nil {
		return rep, err
	}
	for _, id := range rep.RunsEnded {
		r, err := s.SweepRun(ctx, id)
		rep.Destroyed = append(rep.Destroyed, r.Destroyed...)
		rep.Errors = append(rep.Errors, r.Errors...)
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
		}
	}
	return rep, nil
}

// endDeadRuns ends running runs whose process stopped (or that are past
// their deadline), cancelling their jobs, and queued runs that are lost.
func (s *Sweeper) endDeadRuns(ctx context.Context, now time.Time, rep *SweepReport) error {
	stale, err := s.Store.StaleRuns(ctx, now, s.StaleAfter, deadlineGrace)
	if err != nil {
		return err
	}
	for _, r := range stale {
		reason, msg := drills.ReasonInterrupted, "interrupted: the process carrying out the run stopped (no heartbeat)"
		if r.PastDeadline {
			reason, msg = drills.ReasonTimeout, "timeout: the run did not finish by its deadline"
		}
		changed, err := s.Store.FailUnfinished(ctx, r.ID, reason, msg, now)
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
			continue
		}
		if changed {
			rep.RunsEnded = append(rep.RunsEnded, r.ID)
			s.Logger.Warn("run ended by the sweeper", "run_id", r.ID, "drill", r.Drill, "reason", reason)
			if r.JobID != 0 && s.cancelJob != nil {
				// nothing need wait for river's rescuer: the run is over
				if err := s.cancelJob(ctx, r.JobID); err != nil {
					s.Logger.Warn("could not cancel the dead run's job", "run_id", r.ID, "job_id", r.JobID, "error", err.Error())
				}
			}
		}
	}
	s.endLostRuns(ctx, now, rep)
	return nil
}

// lostGrace is how long a queued run may lack a live job: enqueueing
// records the run and inserts its job in one transaction, but a scheduled
// tick records its run just after its job starts.
const lostGrace = time.Minute

// endLostRuns ends queued runs no worker will carry out: their job is gone
// (deleted, discarded, never inserted), or they have waited longer than
// their own timeout. A drill is never blocked by one for good.
func (s *Sweeper) endLostRuns(ctx context.Context, now time.Time, rep *SweepReport) {
	queued, err := s.Store.QueuedRuns(ctx, now, lostGrace, RunDrillArgs{}.Kind())
	if err != nil {
		rep.Errors = append(rep.Errors, err.Error())
		return
	}
	for _, q := range queued {
		var msg string
		switch {
		case !q.LiveJob:
			msg = "lost: its job is gone (deleted, discarded or never inserted); a new run can start"
		case q.Timeout > 0 && now.Sub(q.CreatedAt) > q.Timeout:
			msg = fmt.Sprintf("lost: queued for longer than its timeout (%s) without a worker taking it", q.Timeout)
		default:
			continue
		}
		changed, err := s.Store.FailUnfinished(ctx, q.ID, drills.ReasonLost, msg, now)
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
			continue
		}
		if changed {
			rep.RunsEnded = append(rep.RunsEnded, q.ID)
			s.Logger.Warn("queued run ended by the sweeper", "run_id", q.ID, "drill", q.Drill, "reason", drills.ReasonLost, "why", msg)
		}
	}
}

// SweepRun destroys the targets of one finished run.
func (s *Sweeper) SweepRun(ctx context.Context, runID int64) (SweepReport, error) {
	var rep SweepReport
	targets, err := s.Store.TargetsToSweep(ctx)
	if err != nil {
		return rep, err
	}
	for _, t := range targets {
		if t.Run.ID != runID {
			continue
		}
		if err := s.destroy(ctx, t); err != nil {
			return rep, err
		}
		rep.Destroyed = append(rep.Destroyed, t.Record.InstanceID)
	}
	return rep, nil
}

// destroy removes one recorded target and records the outcome.
func (s *Sweeper) destroy(ctx context.Context, t statedb.TargetToSweep) error {
	tgt, err := s.targetFor(t.Record.Type)
	if err != nil {
		return err
	}
	in := t.Record.Instance(t.Run)
	err = tgt.Destroy(ctx, in)
	now := s.Now()
	if err != nil {
		_ = s.Store.SetTargetState(ctx, t.TargetID, in, drills.TargetDestroyFailed, now, err.Error())
		return fmt.Errorf("destroy %s of run %d: %w", in.ID, t.Run.ID, err)
	}
	s.Logger.Info("target destroyed by the sweeper", "run_id", t.Run.ID, "drill", t.Run.Drill, "instance", in.ID)
	return s.Store.SetTargetState(ctx, t.TargetID, in, drills.TargetDestroyed, now, "")
}

func (s *Sweeper) targetFor(typ string) (drills.Target, error) {
	if ts := s.targets()[typ]; len(ts) > 0 {
		return ts[0], nil
	}
	return backends.Target(drills.TargetSpec{Type: typ})
}

// targets are built once per sweeper: the config does not change under it.
func (s *Sweeper) targets() map[string][]drills.Target {
	s.targetsOnce.Do(func() {
		var errs []error
		s.byType, errs = backends.Targets(s.Drills)
		for _, err := range errs {
			s.Logger.Warn("sweeper: target unavailable", "error", err.Error())
		}
	})
	return s.byType
}

// removeOrphans destroys instances with this store's marks that the store
// has no record of (their record was lost, or made by a process that died
// between creating and recording — which intent-before-action prevents).
func (s *Sweeper) removeOrphans(ctx context.Context, rep *SweepReport) {
	storeID, err := s.Store.ID(ctx)
	if err != nil {
		rep.Errors = append(rep.Errors, err.Error())
		return
	}
	for typ, ts := range s.targets() {
		known, err := s.Store.KnownInstances(ctx, typ)
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
			continue
		}
		for _, t := range ts {
			sw, ok := t.(drills.Sweepable)
			if !ok {
				continue
			}
			managed, err := sw.Managed(ctx)
			if err != nil {
				rep.Errors = append(rep.Errors, err.Error())
				continue
			}
			for _, in := range managed {
				if known[in.ID] || in.StoreID != storeID {
					continue // recorded (swept above), or another installation's
				}
				if err := sw.Destroy(ctx, in); err != nil {
					rep.Errors = append(rep.Errors, err.Error())
					continue
				}
				known[in.ID] = true
				s.Logger.Warn("orphaned instance removed", "instance", in.ID, "run_id", in.RunID, "drill", in.Drill)
				rep.OrphansRemoved = append(rep.OrphansRemoved, in.ID)
			}
		}
	}
}

// checkOverdue lists overdue drills and notifies once per overdue spell.
func (s *Sweeper) checkOverdue(ctx context.Context, rep *SweepReport) {
	statuses, err := ScheduleStatuses(ctx, s.Store, s.Drills, s.Now())
	if err != nil {
		rep.Errors = append(rep.Errors, err.Error())
		return
	}
	for _, st := range statuses {
		if !st.Overdue {
			continue
		}
		rep.Overdue = append(rep.Overdue, st.Drill)
		spec := s.Drills.Drill(st.Drill)
		if s.enqueueTx == nil || len(spec.Notify) == 0 {
			continue
		}
		news, err := s.Store.ClaimOverdueNotice(ctx, st.Drill, st.LastSuccessAt)
		if err != nil || !news {
			continue
		}
		if err := enqueueNotifications(ctx, s.Store, s.enqueueTx, spec, EventOverdue, 0); err != nil {
			rep.Errors = append(rep.Errors, err.Error())
		}
	}
}

// sweepWorker runs the sweeper as a periodic job.
type sweepWorker struct {
	river.WorkerDefaults[SweepArgs]
	sweeper *Sweeper
}

func (w *sweepWorker) Timeout(*river.Job[SweepArgs]) time.Duration { return 30 * time.Minute }

func (w *sweepWorker) Work(ctx context.Context, _ *river.Job[SweepArgs]) error {
	return w.sweeper.logged(ctx, "sweep", w.sweeper.Sweep)
}

// logged runs one kind of sweep and logs the errors it met on the way.
func (s *Sweeper) logged(ctx context.Context, what string, sweep func(context.Context) (SweepReport, error)) error {
	rep, err := sweep(ctx)
	if err != nil {
		return err
	}
	if len(rep.Errors) > 0 {
		s.Logger.Warn(what+" finished with errors", "errors", rep.Errors)
	}
	return nil
}

// staleCheckWorker runs Sweeper.StaleCheck as a periodic job.
type staleCheckWorker struct {
	river.WorkerDefaults[StaleCheckArgs]
	sweeper *Sweeper
}

func (w *staleCheckWorker) Timeout(*river.Job[StaleCheckArgs]) time.Duration { return 10 * time.Minute }

func (w *staleCheckWorker) Work(ctx context.Context, _ *river.Job[StaleCheckArgs]) error {
	return w.sweeper.logged(ctx, "stale-run check", w.sweeper.StaleCheck)
}

// teardownWorker is the dead-man: at a run's deadline (plus slack) it
// destroys the run's target unless that already happened.
type teardownWorker struct {
	river.WorkerDefaults[TeardownArgs]
	cfg     Config
	sweeper *Sweeper
}

func (w *teardownWorker) Work(ctx context.Context, job *river.Job[TeardownArgs]) error {
	t, err := w.cfg.Store.TargetByID(ctx, job.Args.TargetID)
	if err != nil {
		return err
	}
	if t == nil || t.Record.State == drills.TargetDestroyed || t.Record.State == drills.TargetKept {
		return nil // the normal path tore it down: nothing to do
	}
	if t.Run.FinishedAt == nil {
		if _, err := w.cfg.Store.FailUnfinished(ctx, t.Run.ID, drills.ReasonTimeout,
			"timeout: the run had not finished when its dead-man teardown came due", w.cfg.Now()); err != nil {
			return err
		}
	}
	err = w.sweeper.destroy(ctx, *t)
	if errors.Is(err, drills.ErrNotManaged) {
		return river.JobCancel(err) // never retried: it is not ours
	}
	return err
}
