package statedb

import (
	"context"
	"drill/drills"
	"drill/verify"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// CreateRun inserts a run and returns it. It fails with drills.ErrDrillBusy
// while another run of the drill is queued or running.
func (s *Store) CreateRun(ctx context.Context, p drills.CreateRunParams) (*drills.Run, error) {
	return s.CreateRunTx(ctx, nil, p)
}

// CreateRunTx is CreateRun in q, a transaction (nil: the pool), so that
// what else the caller writes there (a job) commits with the run.
func (s *Store) CreateRunTx(ctx context.Context, q Querier, p drills.CreateRunParams) (*drills.Run, error) {
	if q == nil {
		q = s.Pool
	}
	policy, err := json.Marshal(p.Policy)
	if err != nil {
		return nil, err
	}
	r := &drills.Run{Drill: p.Spec.Name, Status: p.Status, Trigger: p.Trigger, TriggeredBy: p.TriggeredBy,
		Policy: p.Policy, Objectives: p.Spec.Objectives}
	// A busy drill is refused before the insert, so that a refusal takes
	// no run id (gaps in ids would read as deleted runs); the unique index
	// still decides a race.
	var active int64
	switch err := q.QueryRow(ctx, "select id from drill_runs where drill = $1 and status in "+sqlActive, r.Drill).Scan(&active); {
	case err == nil:
		return nil, fmt.Errorf("%w: run %d of drill %s", drills.ErrDrillBusy, active, r.Drill)
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("record run: %w", err)
	}
	err = q.QueryRow(ctx, `insert into drill_runs (drill, status, trigger, triggered_by, spec, objective_rto_seconds, objective_rpo_seconds)
		values ($1, $2, $3, $4, $5, $6, $7) returning id, created_at`,
		r.Drill, r.Status, r.Trigger, r.TriggeredBy, policy, drills.ObjectiveSeconds(r.Objectives.RTO), drills.ObjectiveSeconds(r.Objectives.RPO)).
		Scan(&r.ID, &r.CreatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.ConstraintName == "drill_runs_one_active" {
		var active int64
		_ = s.Pool.QueryRow(ctx, "select id from drill_runs where drill = $1 and status in "+sqlActive, r.Drill).Scan(&active)
		return nil, fmt.Errorf("%w: run %d of drill %s", drills.ErrDrillBusy, active, r.Drill)
	}
	if err != nil {
		return nil, fmt.Errorf("record run: %w", err)
	}
	return r, nil
}

// StartRun marks a run running from startedAt until at most deadline, on worker.
func (s *Store) StartRun(ctx context.Context, id int64, startedAt, deadline time.Time, by drills.Executor) error {
	return s.execOpen(ctx, "run start", `update drill_runs set status = `+sqlRunning+`, started_at = $2, deadline_at = $3,
		heartbeat_at = $2, worker = $4, drill_version = $5, host = $6 where id = $1 and finished_at is null`,
		id, startedAt, deadline, by.Worker, nullString(by.Version), nullString(by.Host))
}

// Heartbeat records that the process carrying out a run is alive.
func (s *Store) Heartbeat(ctx context.Context, id int64, at time.Time) error {
	return s.exec(ctx, "heartbeat", `update drill_runs set heartbeat_at = $2 where id = $1 and finished_at is null`, id, at)
}

// StartPhase records that a phase began.
func (s *Store) StartPhase(ctx context.Context, runID int64, seq int, name drills.Phase, at time.Time) error {
	return s.execOpen(ctx, "phase start", `insert into drill_phases (run_id, seq, name, started_at)
		select $1::bigint, $2::int, $3::text, $4::timestamptz where `+openRun,
		runID, seq, name, at)
}

// FinishPhase records that a phase ended, with its error if any.
func (s *Store) FinishPhase(ctx context.Context, runID int64, seq int, at time.Time, phaseErr string) error {
	return s.execOpen(ctx, "phase end", `update drill_phases set finished_at = $3, error = $4 where run_id = $1 and seq = $2 and `+openRun,
		runID, seq, at, nullString(phaseErr))
}

// SetBackup records which backup a run restores.
func (s *Store) SetBackup(ctx context.Context, runID int64, b drills.Backup) error {
	var details, selection []byte
	if len(b.Details) > 0 {
		details, _ = json.Marshal(b.Details)
	}
	if b.Selection != nil {
		selection, _ = json.Marshal(b.Selection)
	}
	return s.execOpen(ctx, "backup", `update drill_runs set backup_id = $2, backup_created_at = $3, backup_created_at_source = $4,
		backup_format = $5, backup_size_bytes = $6, backup_database = $7, backup_details = $8, backup_sha256 = $9, backup_selection = $10,
		backup_recovered_to = $11 where id = $1 and finished_at is null`,
		runID, b.ID, b.CreatedAt, b.CreatedAtSource, b.Format, b.SizeBytes, nullString(b.Database), details, nullString(b.SHA256), selection, b.RecoveredTo)
}

// RecordTargetIntent records, before anything is created, the instance a
// run is about to create, and runs hook (when set) in the same
// transaction. It returns the target record's id.
func (s *Store) RecordTargetIntent(ctx context.Context, in drills.Instance, hook drills.IntentHook) (int64, error) {
	details, _ := json.Marshal(in.Details)
	var id int64
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `insert into drill_targets (run_id, type, instance_id, details, state, backend_state)
			select $1::bigint, $2::text, $3::text, $4::jsonb, `+sqlIntended+`, $5::jsonb where `+openRun+` returning id`,
			in.RunID, in.Type, in.ID, details, backendState(in)).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return drills.ErrRunEnded // nothing is created for a run that has ended
		}
		if err != nil || hook == nil {
			return err
		}
		return hook(ctx, tx, id)
	})
	if err != nil {
		return 0, fmt.Errorf("record target intent: %w", err)
	}
	return id, nil
}

// SetTargetState records a target's state and details. created marks the
// creation time, destroyed the teardown time.
func (s *Store) SetTargetState(ctx context.Context, targetID int64, in drills.Instance, state drills.TargetState, at time.Time, destroyErr string) error {
	details, _ := json.Marshal(in.Details)
	return s.exec(ctx, "target state", `update drill_targets set state = $2, details = $3,
		created_at = case when $2 = `+sqlCreated+` and exists (select 1 from drill_runs r where r.id = drill_targets.run_id and r.finished_at is null)
			then $4 else created_at end, -- sealed with the run: not set once it ended
		torn_down_at = case when $2 = `+sqlDestroyed+` then $4 else torn_down_at end,
		destroy_error = $5, backend_state = $6 where id = $1`,
		targetID, state, details, at, nullString(destroyErr), backendState(in))
}

// backendState is a target's own state as a jsonb value, or null.
func backendState(in drills.Instance) any {
	if len(in.State) == 0 {
		return nil
	}
	return string(in.State)
}

// AddCheck records one check result.
func (s *Store) AddCheck(ctx context.Context, runID int64, seq int, c drills.Check, r drills.CheckResult) error {
	params, _ := json.Marshal(c)
	var details []byte
	if len(r.Details) > 0 {
		details, _ = json.Marshal(r.Details)
	}
	return s.execOpen(ctx, "check", `insert into drill_checks (run_id, seq, name, type, params, expected, actual, passed, duration_seconds, error, details)
		select $1::bigint, $2::int, $3::text, $4::text, $5::jsonb, $6::text, $7::text, $8::boolean, $9::float8, $10::text, $11::jsonb where `+openRun,
		runID, seq, r.Name, r.Type, params, r.Expected, r.Actual, r.Passed, r.Duration.Seconds(), nullString(r.Error), details)
}

// SetProgress records a run's latest progress line.
func (s *Store) SetProgress(ctx context.Context, runID int64, msg string, at time.Time) error {
	return s.exec(ctx, "progress", `update drill_runs set progress = $2, progress_at = $3 where id = $1 and finished_at is null`, runID, msg, at)
}

// SetRestoreLog records what the restore programs printed, and its digest.
func (s *Store) SetRestoreLog(ctx context.Context, runID int64, log string) error {
	return s.execOpen(ctx, "restore log", `update drill_runs set restore_log = $2, restore_log_sha256 = $3 where id = $1 and finished_at is null`,
		runID, log, drills.LogDigest(log))
}

// RestoreLogs returns the restore logs of runs, by run id.
func (s *Store) RestoreLogs(ctx context.Context, ids []int64) (map[int64]string, error) {
	rows, err := s.Pool.Query(ctx, `select id, restore_log from drill_runs where id = any($1) and restore_log is not null`, ids)
	if err != nil {
		return nil, err
	}
	out := map[int64]string{}
	var id int64
	var log string
	_, err = pgx.ForEachRow(rows, []any{&id, &log}, func() error {
		out[id] = log
		return nil
	})
	return out, err
}

// SetTables records the inventory of a run's restored database.
func (s *Store) SetTables(ctx context.Context, runID int64, tables []verify.TableInfo) error {
	var data []byte
	if len(tables) > 0 {
		data, _ = json.Marshal(tables)
	}
	return s.execOpen(ctx, "tables", `update drill_runs set tables = $2 where id = $1 and finished_at is null`, runID, data)
}

// LastInventory returns the inventory of the drill's newest passed run
// before runID, or nil.
func (s *Store) LastInventory(ctx context.Context, drill string, runID int64) (*verify.Inventory, error) {
	inv := &verify.Inventory{}
	var data []byte
	// Only a run of the same source compares: a drill pointed at another
	// database starts a new baseline.
	err := s.Pool.QueryRow(ctx, `select id, tables from drill_runs where drill = $1 and id < $2 and status = `+sqlPassed+`
		and tables is not null and spec->'source' = (select spec->'source' from drill_runs where id = $2)
		order by id desc limit 1`, drill, runID).Scan(&inv.RunID, &data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("last inventory of %s: %w", drill, err)
	}
	if err := json.Unmarshal(data, &inv.Tables); err != nil {
		return nil, fmt.Errorf("last inventory of %s (run %d): %w", drill, inv.RunID, err)
	}
	return inv, nil
}

// FinishRun records a run's outcome and seals the run into its drill's
// hash chain, in one transaction.
func (s *Store) FinishRun(ctx context.Context, runID int64, o drills.Outcome) error {
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `update drill_runs set status = $2, reason = $3, error = $4, finished_at = $5,
			rto_seconds = $6, rpo_seconds = $7, data_rpo_seconds = $8, rto_met = $9, rpo_met = $10 where id = $1 and finished_at is null`,
			runID, o.Status, nullString(string(o.Reason)), nullString(o.Error), o.FinishedAt,
			drills.OptSeconds(o.RTO), drills.OptSeconds(o.RPO), drills.OptSeconds(o.DataRPO), o.RTOMet, o.RPOMet)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 { // ended meanwhile: its seal stands
			return drills.ErrRunEnded
		}
		return s.seal(ctx, tx, runID, o.FinishedAt)
	})
	if err != nil {
		return fmt.Errorf("record run outcome: %w", err)
	}
	return nil
}

// SetWaiting records that a run sleeps until until (its heartbeat too, so
// the sweeper does not take it for dead while it sleeps).
func (s *Store) SetWaiting(ctx context.Context, runID int64, until time.Time) error {
	return s.exec(ctx, "waiting", `update drill_runs set waiting_until = $2, heartbeat_at = $2 where id = $1`, runID, until)
}

// ClearWaiting records that a sleeping run woke up: it is running (and
// beating) again from at.
func (s *Store) ClearWaiting(ctx context.Context, runID int64, at time.Time) error {
	return s.exec(ctx, "resume", `update drill_runs set waiting_until = null, heartbeat_at = $2 where id = $1`, runID, at)
}

// SetJob records the job carrying a run.
func (s *Store) SetJob(ctx context.Context, runID, jobID int64) error {
	return s.exec(ctx, "job", `update drill_runs set job_id = $2 where id = $1`, runID, jobID)
}

// RestoreLog returns what the restore programs printed in a run ("" when
// nothing was recorded).
func (s *Store) RestoreLog(ctx context.Context, runID int64) (string, error) {
	var log *string
	err := s.Pool.QueryRow(ctx, `select restore_log from drill_runs where id = $1`, runID).Scan(&log)
	if err != nil || log == nil {
		return "", err
	}
	return *log, nil
}

// LastWorkerSeen is when a worker last finished one of its periodic jobs
// (the stale-run check, every few seconds; the sweep): nil when none ever
// did, or river's completed jobs were cleaned since.
func (s *Store) LastWorkerSeen(ctx context.Context) (*time.Time, error) {
	var at *time.Time
	err := s.Pool.QueryRow(ctx, `select max(finalized_at) from river_job where kind in ('drill_stale_check', 'drill_sweep') and state = 'completed'`).Scan(&at)
	return at, err
}
