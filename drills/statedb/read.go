package statedb

import (
	"bytes"
	"context"
	"drill/drills"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

const runColumns = `id, drill, status, coalesce(reason, ''), coalesce(error, ''), trigger, triggered_by, spec,
	created_at, started_at, finished_at, deadline_at,
	backup_id, backup_created_at, coalesce(backup_created_at_source, ''), coalesce(backup_format, ''),
	coalesce(backup_size_bytes, 0), coalesce(backup_database, ''),
	rto_seconds, rpo_seconds, data_rpo_seconds, objective_rto_seconds, objective_rpo_seconds, rto_met, rpo_met,
	heartbeat_at, waiting_until, backup_details, coalesce(backup_sha256, ''), backup_selection, tables, coalesce(drill_version, ''), coalesce(host, ''), coalesce(restore_log_sha256, ''), coalesce(progress, ''), progress_at, backup_recovered_to,
	record, coalesce(prev_hash, ''), chain_hash, coalesce(seal, ''), coalesce(seal_key_id, '')`

func scanRun(row pgx.Row) (*drills.Run, error) {
	var r drills.Run
	var policy []byte
	var backupID *string
	var backupAt *time.Time
	var b drills.Backup
	var rto, rpo, dataRPO, objRTO, objRPO *float64
	var backupDetails, selection, tables []byte
	var record, chainHash *string
	var st drills.SealState
	err := row.Scan(&r.ID, &r.Drill, &r.Status, &r.Reason, &r.Error, &r.Trigger, &r.TriggeredBy, &policy,
		&r.CreatedAt, &r.StartedAt, &r.FinishedAt, &r.Deadline,
		&backupID, &backupAt, &b.CreatedAtSource, &b.Format, &b.SizeBytes, &b.Database,
		&rto, &rpo, &dataRPO, &objRTO, &objRPO, &r.RTOMet, &r.RPOMet, &r.HeartbeatAt, &r.WaitingUntil, &backupDetails, &b.SHA256, &selection, &tables, &r.DrillVersion, &r.Host, &r.RestoreLogSHA256, &r.Progress, &r.ProgressAt, &b.RecoveredTo,
		&record, &st.PrevHash, &chainHash, &st.Seal, &st.KeyID)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(policy, &r.Policy); err != nil {
		return nil, fmt.Errorf("run %d: policy: %w", r.ID, err)
	}
	if backupID != nil {
		b.ID = *backupID
		if backupAt != nil {
			b.CreatedAt = *backupAt
		}
		if len(backupDetails) > 0 {
			_ = json.Unmarshal(backupDetails, &b.Details)
		}
		if len(selection) > 0 {
			if err := json.Unmarshal(selection, &b.Selection); err != nil {
				return nil, fmt.Errorf("run %d: backup selection: %w", r.ID, err)
			}
		}
		r.Backup = &b
	}
	if len(tables) > 0 {
		if err := json.Unmarshal(tables, &r.Tables); err != nil {
			return nil, fmt.Errorf("run %d: tables: %w", r.ID, err)
		}
	}
	if record != nil && chainHash != nil {
		st.Record, st.ChainHash = []byte(*record), *chainHash
		r.Seal = &st
	}
	r.RTO, r.RPO, r.DataRPO = fromSeconds(rto), fromSeconds(rpo), fromSeconds(dataRPO)
	if d := fromSeconds(objRTO); d != nil {
		r.Objectives.RTO = *d
	}
	if d := fromSeconds(objRPO); d != nil {
		r.Objectives.RPO = *d
	}
	return &r, nil
}

func fromSeconds(s *float64) *time.Duration {
	if s == nil {
		return nil
	}
	d := time.Duration(math.Round(*s*1e6)) * time.Microsecond // as written, not a nanosecond below
	return &d
}

// Run returns a run with its phases, checks and target, or ErrRunNotFound.
func (s *Store) Run(ctx context.Context, id int64) (*drills.Run, error) {
	return s.runQ(ctx, s.Pool, id)
}

func (s *Store) runQ(ctx context.Context, q Querier, id int64) (*drills.Run, error) {
	r, err := scanRun(q.QueryRow(ctx, "select "+runColumns+" from drill_runs where id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: %d", drills.ErrRunNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	if err := loadDetails(ctx, q, []*drills.Run{r}); err != nil {
		return nil, err
	}
	return r, s.checkIntegrity(ctx, q, r) // with its sign-offs
}

// RunFilter selects runs, newest first.
type RunFilter struct {
	Drill string
	Limit int
	// BeforeID pages backwards: only runs with a smaller id.
	BeforeID int64
}

// Runs returns runs matching f, newest first, with their details.
func (s *Store) Runs(ctx context.Context, f RunFilter) ([]*drills.Run, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	return s.runsWhere(ctx, "($1 = '' or drill = $1) and ($2 = 0 or id < $2) order by id desc limit $3", f.Drill, f.BeforeID, f.Limit)
}

// runsWhere returns the runs a condition selects, with their details and
// integrity, in six queries at most.
func (s *Store) runsWhere(ctx context.Context, where string, args ...any) ([]*drills.Run, error) {
	rows, err := s.Pool.Query(ctx, "select "+runColumns+" from drill_runs where "+where, args...)
	if err != nil {
		return nil, err
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*drills.Run, error) { return scanRun(row) })
	if err != nil {
		return nil, err
	}
	if err := loadDetails(ctx, s.Pool, runs); err != nil {
		return nil, err
	}
	if err := s.checkIntegrity(ctx, s.Pool, runs...); err != nil {
		return nil, err
	}
	return runs, nil
}

// loadDetails fills phases, checks, targets and sign-offs of runs with
// four queries.
func loadDetails(ctx context.Context, q Querier, runs []*drills.Run) error {
	if len(runs) == 0 {
		return nil
	}
	byID := map[int64]*drills.Run{}
	ids := make([]int64, 0, len(runs))
	for _, r := range runs {
		byID[r.ID] = r
		ids = append(ids, r.ID)
	}
	rows, err := q.Query(ctx, `select run_id, name, started_at, finished_at, coalesce(error, '')
		from drill_phases where run_id = any($1) order by run_id, seq`, ids)
	if err != nil {
		return err
	}
	var runID int64
	var p drills.PhaseRecord
	_, err = pgx.ForEachRow(rows, []any{&runID, &p.Name, &p.StartedAt, &p.FinishedAt, &p.Error}, func() error {
		byID[runID].Phases = append(byID[runID].Phases, p)
		p = drills.PhaseRecord{} // the scan must not reuse the appended record's pointers
		return nil
	})
	if err != nil {
		return err
	}
	rows, err = q.Query(ctx, `select run_id, name, type, expected, actual, passed, duration_seconds, coalesce(error, ''), details
		from drill_checks where run_id = any($1) order by run_id, seq`, ids)
	if err != nil {
		return err
	}
	var c drills.CheckResult
	var secs float64
	var details, state []byte
	_, err = pgx.ForEachRow(rows, []any{&runID, &c.Name, &c.Type, &c.Expected, &c.Actual, &c.Passed, &secs, &c.Error, &details}, func() error {
		c.Duration = *fromSeconds(&secs)
		c.Details = nil
		if len(details) > 0 {
			if err := json.Unmarshal(details, &c.Details); err != nil {
				return fmt.Errorf("run %d: check %s: details: %w", runID, c.Name, err)
			}
		}
		byID[runID].Checks = append(byID[runID].Checks, c)
		return nil
	})
	if err != nil {
		return err
	}
	rows, err = q.Query(ctx, `select distinct on (run_id) run_id, id, type, instance_id, details, state, recorded_at,
		created_at, torn_down_at, coalesce(destroy_error, ''), backend_state from drill_targets where run_id = any($1) order by run_id, id desc`, ids)
	if err != nil {
		return err
	}
	var t drills.TargetRecord
	_, err = pgx.ForEachRow(rows, []any{&runID, &t.ID, &t.Type, &t.InstanceID, &details, &t.State, &t.RecordedAt,
		&t.CreatedAt, &t.TornDownAt, &t.DestroyError, &state}, func() error {
		rec := t
		rec.Details = map[string]string{}
		_ = json.Unmarshal(details, &rec.Details)
		rec.BackendState = bytes.Clone(state)
		byID[runID].Target = &rec
		t = drills.TargetRecord{}
		return nil
	})
	if err != nil {
		return err
	}
	rows, err = q.Query(ctx, `select run_id, kind, signed_by, note, signed_at, coalesce(seal, ''), coalesce(seal_key_id, '')
		from drill_signoffs where run_id = any($1) order by run_id, id`, ids)
	if err != nil {
		return err
	}
	var so drills.Signoff
	_, err = pgx.ForEachRow(rows, []any{&runID, &so.Kind, &so.SignedBy, &so.Note, &so.SignedAt, &so.Seal, &so.SealKeyID}, func() error {
		byID[runID].Signoffs = append(byID[runID].Signoffs, so)
		return nil
	})
	return err
}

// DrillStats counts the runs of a drill.
type DrillStats struct {
	Runs     int // all runs
	Finished int
	Passed   int
}

// PassRate is passed over finished runs, or 0.
func (s DrillStats) PassRate() float64 {
	if s.Finished == 0 {
		return 0
	}
	return float64(s.Passed) / float64(s.Finished)
}

// Stats counts runs of drill.
func (s *Store) Stats(ctx context.Context, drill string) (DrillStats, error) {
	var st DrillStats
	err := s.Pool.QueryRow(ctx, `select count(*), count(finished_at), count(*) filter (where status = `+sqlPassed+`)
		from drill_runs where drill = $1`, drill).Scan(&st.Runs, &st.Finished, &st.Passed)
	return st, err
}

// RunPoint is one finished run on a trend chart.
type RunPoint struct {
	ID        int64
	StartedAt time.Time
	Status    drills.Status
	RTO, RPO  *time.Duration
}

// Trend returns the last n finished runs of drill, oldest first.
func (s *Store) Trend(ctx context.Context, drill string, n int) ([]RunPoint, error) {
	rows, err := s.Pool.Query(ctx, `select id, started_at, status, rto_seconds, rpo_seconds from (
			select id, started_at, status, rto_seconds, rpo_seconds from drill_runs
			where drill = $1 and finished_at is not null and started_at is not null order by id desc limit $2
		) t order by id`, drill, n)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (RunPoint, error) {
		var p RunPoint
		var rto, rpo *float64
		err := r.Scan(&p.ID, &p.StartedAt, &p.Status, &rto, &rpo)
		p.RTO, p.RPO = fromSeconds(rto), fromSeconds(rpo)
		return p, err
	})
}

// RunCount is the number of runs of one drill in one status.
type RunCount struct {
	Drill  string
	Status drills.Status
	Count  int
}

// RunCounts counts finished runs by drill and status: numbers that only grow.
func (s *Store) RunCounts(ctx context.Context) ([]RunCount, error) {
	rows, err := s.Pool.Query(ctx, `select drill, status, count(*) from drill_runs where finished_at is not null
		group by drill, status order by drill, status`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (RunCount, error) {
		var c RunCount
		err := r.Scan(&c.Drill, &c.Status, &c.Count)
		return c, err
	})
}

// SealKeyID is the key id of the newest sealed run, or "" when no run
// carries a seal.
func (s *Store) SealKeyID(ctx context.Context) (string, error) {
	var id string
	err := s.Pool.QueryRow(ctx, `select coalesce((select seal_key_id from drill_runs where seal_key_id is not null order by id desc limit 1), '')`).Scan(&id)
	return id, err
}

// checkIntegrity sets the integrity of runs (see CheckIntegrity in
// chain.go). Beyond what a run's own row says, its drill's history tells
// two more forgeries: a finished run without a sealed record, when an
// earlier run of its drill has one (its record was removed), and, with a
// sealing key, a run without a seal when an earlier run carries one of a
// known key (its seal was removed). The history is read in one query,
// whatever the number of runs.
func (s *Store) checkIntegrity(ctx context.Context, q Querier, runs ...*drills.Run) error {
	keys := s.SealKeys()
	var ask []int64
	byID := map[int64]*drills.Run{}
	for _, r := range runs {
		drills.CheckIntegrity(r, keys)
		st := r.Seal
		finished := r.Status == drills.StatusPassed || r.Status == drills.StatusFailed
		if st == nil && finished || st != nil && len(keys) > 0 && st.Seal == "" && st.Integrity == drills.IntegrityChained {
			ask = append(ask, r.ID)
			byID[r.ID] = r
		}
	}
	if len(ask) == 0 {
		return nil
	}
	rows, err := q.Query(ctx, `select r.id,
			exists (select 1 from drill_runs e where e.drill = r.drill and e.id < r.id and e.chain_hash is not null),
			exists (select 1 from drill_runs e where e.drill = r.drill and e.id < r.id and e.seal_key_id = any($2))
		from drill_runs r where r.id = any($1)`, ask, slices.Collect(maps.Keys(keys)))
	if err != nil {
		return err
	}
	var id int64
	var recordedBefore, sealedBefore bool
	_, err = pgx.ForEachRow(rows, []any{&id, &recordedBefore, &sealedBefore}, func() error {
		r := byID[id]
		switch {
		case r.Seal == nil && recordedBefore:
			r.Seal = &drills.SealState{Integrity: drills.IntegrityAltered,
				Problem: "the run is finished but has no sealed record, though an earlier run of its drill has one: its record was removed"}
		case r.Seal != nil && sealedBefore:
			r.Seal.Integrity, r.Seal.Problem = drills.IntegrityAltered, "the run carries no seal, though an earlier run of its drill does: its seal was removed"
		}
		return nil
	})
	return err
}

// RunSeal reads the seal of a finished run and checks it against r as
// given (the run as its process knows it).
func (s *Store) RunSeal(ctx context.Context, r *drills.Run) (*drills.SealState, error) {
	var st drills.SealState
	var record, chainHash *string
	err := s.Pool.QueryRow(ctx, `select record, coalesce(prev_hash, ''), chain_hash, coalesce(seal, ''), coalesce(seal_key_id, '')
		from drill_runs where id = $1`, r.ID).Scan(&record, &st.PrevHash, &chainHash, &st.Seal, &st.KeyID)
	if err != nil || record == nil || chainHash == nil {
		return nil, err
	}
	st.Record, st.ChainHash = []byte(*record), *chainHash
	c := *r
	c.Seal = &st
	if err := s.checkIntegrity(ctx, s.Pool, &c); err != nil {
		return nil, err
	}
	return &st, nil
}

// RunByJob returns the run carried by a job, or nil.
func (s *Store) RunByJob(ctx context.Context, jobID int64) (*drills.Run, error) {
	var id int64
	err := s.Pool.QueryRow(ctx, "select id from drill_runs where job_id = $1", jobID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.Run(ctx, id)
}
