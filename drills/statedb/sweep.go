package statedb

import (
	"bytes"
	"context"
	"drill/drills"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// FailUnfinished ends a run that is still queued or running as failed with
// reason and message, and closes its open phases. It reports whether it
// changed anything: a run that already finished is left alone.
func (s *Store) FailUnfinished(ctx context.Context, runID int64, reason drills.Reason, msg string, at time.Time) (bool, error) {
	var changed bool
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `update drill_runs set status = `+sqlFailed+`, reason = $2, error = $3, finished_at = $4,
			rto_met = case when objective_rto_seconds is not null then false end
			where id = $1 and finished_at is null`, runID, reason, msg, at)
		if err != nil {
			return err
		}
		changed = tag.RowsAffected() == 1
		if !changed {
			return nil
		}
		if _, err = tx.Exec(ctx, `update drill_phases set finished_at = $2, error = $3 where run_id = $1 and finished_at is null`, runID, at, msg); err != nil {
			return err
		}
		return s.seal(ctx, tx, runID, at)
	})
	if err != nil {
		return false, fmt.Errorf("fail run %d: %w", runID, err)
	}
	return changed, nil
}

// StaleRun is a run that is still marked running but whose process stopped
// beating, or that is past its deadline.
type StaleRun struct {
	ID           int64
	Drill        string
	PastDeadline bool
	JobID        int64 // the river job that carried it, or 0
}

// StaleRuns lists running runs without a heartbeat for staleAfter, and
// running or queued runs past their deadline plus grace.
func (s *Store) StaleRuns(ctx context.Context, now time.Time, staleAfter, grace time.Duration) ([]StaleRun, error) {
	rows, err := s.Pool.Query(ctx, `select id, drill, coalesce(deadline_at + $3::interval < $1::timestamptz, false), coalesce(job_id, 0) from drill_runs
		where finished_at is null and status = `+sqlRunning+`
		  and (heartbeat_at < $1::timestamptz - $2::interval or deadline_at + $3::interval < $1::timestamptz)
		order by id`, now, staleAfter, grace)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (StaleRun, error) {
		var sr StaleRun
		err := r.Scan(&sr.ID, &sr.Drill, &sr.PastDeadline, &sr.JobID)
		return sr, err
	})
}

// QueuedRun is a run still waiting for a worker.
type QueuedRun struct {
	ID        int64
	Drill     string
	CreatedAt time.Time
	// Timeout is the run's own timeout (from its policy).
	Timeout time.Duration
	// LiveJob says a river job of the run's kind that has not ended
	// carries it.
	LiveJob bool
}

// QueuedRuns lists the runs queued before now-grace, saying whether a live
// job of kind (river's job kind of a drill run) carries each.
func (s *Store) QueuedRuns(ctx context.Context, now time.Time, grace time.Duration, kind string) ([]QueuedRun, error) {
	rows, err := s.Pool.Query(ctx, `select r.id, r.drill, r.created_at, coalesce(r.spec->>'timeout', ''),
			exists (select 1 from river_job j where j.kind = $3
				and j.state in ('available', 'scheduled', 'running', 'retryable', 'pending')
				and (j.id = r.job_id or j.args->>'run_id' = r.id::text))
		from drill_runs r where r.status = `+sqlQueued+` and r.finished_at is null and r.created_at < $1::timestamptz - $2::interval
		order by r.id`, now, grace, kind)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (QueuedRun, error) {
		var q QueuedRun
		var timeout string
		err := row.Scan(&q.ID, &q.Drill, &q.CreatedAt, &timeout, &q.LiveJob)
		q.Timeout, _ = time.ParseDuration(timeout)
		return q, err
	})
}

// TargetToSweep is a target the store knows that may still exist.
type TargetToSweep struct {
	TargetID int64
	Run      *drills.Run
	Record   drills.TargetRecord
}

// TargetsToSweep lists targets not yet destroyed (intended, created or
// destroy_failed) whose run has finished, and kept targets past their
// kept_until. Kept targets are left to people until then.
func (s *Store) TargetsToSweep(ctx context.Context) ([]TargetToSweep, error) {
	return s.targetsWhere(ctx, `r.finished_at is not null and (t.state in `+sqlLive+`
		or t.state = `+sqlKept+` and case when t.details->>'`+drills.KeptUntilDetail+`' ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]+Z$'
			then (t.details->>'`+drills.KeptUntilDetail+`')::timestamptz < now() else false end)`)
}

// TargetByID returns one target with its run.
func (s *Store) TargetByID(ctx context.Context, id int64) (*TargetToSweep, error) {
	ts, err := s.targetsWhere(ctx, "t.id = $1", id)
	if err != nil || len(ts) == 0 {
		return nil, err
	}
	return &ts[0], nil
}

func (s *Store) targetsWhere(ctx context.Context, where string, args ...any) ([]TargetToSweep, error) {
	rows, err := s.Pool.Query(ctx, `select t.id, t.run_id, r.drill, r.status, r.finished_at, t.type, t.instance_id, t.details, t.state, t.backend_state
		from drill_targets t join drill_runs r on r.id = t.run_id where `+where+` order by t.id`, args...)
	if err != nil {
		return nil, err
	}
	var out []TargetToSweep
	var ts TargetToSweep
	var run drills.Run
	var details, state []byte
	_, err = pgx.ForEachRow(rows, []any{&ts.TargetID, &run.ID, &run.Drill, &run.Status, &run.FinishedAt,
		&ts.Record.Type, &ts.Record.InstanceID, &details, &ts.Record.State, &state}, func() error {
		r := run
		rec := ts.Record
		rec.ID = ts.TargetID
		rec.Details = map[string]string{}
		_ = json.Unmarshal(details, &rec.Details)
		rec.BackendState = bytes.Clone(state)
		out = append(out, TargetToSweep{TargetID: ts.TargetID, Run: &r, Record: rec})
		run = drills.Run{}
		return nil
	})
	return out, err
}

// KnownInstances returns the instance ids of every target of type the
// store has a record of.
func (s *Store) KnownInstances(ctx context.Context, targetType string) (map[string]bool, error) {
	rows, err := s.Pool.Query(ctx, "select instance_id from drill_targets where type = $1", targetType)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	known := make(map[string]bool, len(ids))
	for _, id := range ids {
		known[id] = true
	}
	return known, nil
}

// ClaimOverdueNotice records that drill is overdue since lastSuccess and
// reports whether this is news (no notice was sent for that last success).
func (s *Store) ClaimOverdueNotice(ctx context.Context, drill string, lastSuccess *time.Time) (bool, error) {
	tag, err := s.Pool.Exec(ctx, `insert into drill_overdue_notices (drill, last_success_at) values ($1, $2)
		on conflict (drill) do update set last_success_at = excluded.last_success_at, notified_at = now()
		where drill_overdue_notices.last_success_at is distinct from excluded.last_success_at`, drill, lastSuccess)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}
