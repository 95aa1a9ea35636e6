package drills

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"drill/migrations"
	"drill/verify"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrRunNotFound is returned by Store.Run for an unknown run id.
var ErrRunNotFound = errors.New("run not found")

// Store keeps runs, phases, checks and targets in PostgreSQL. Every write is
// a short transaction of its own; nothing external happens inside one.
type Store struct {
	Pool *pgxpool.Pool
	// SealingKey, when set, signs every run's chain hash as it is sealed
	// (DRILL_SEALING_KEY). It is never stored in the database.
	SealingKey ed25519.PrivateKey
	// SealingPub checks seals when runs are read (default: SealingKey's
	// public half).
	SealingPub ed25519.PublicKey
}

// SealingPublicKey is the key seals are checked with, or nil.
func (s *Store) SealingPublicKey() ed25519.PublicKey { return s.sealingPub() }

// sealingPub is the key seals are checked with, or nil.
func (s *Store) sealingPub() ed25519.PublicKey {
	if s.SealingPub != nil {
		return s.SealingPub
	}
	if s.SealingKey != nil {
		return s.SealingKey.Public().(ed25519.PublicKey)
	}
	return nil
}

// ID returns the identity of this state database (see migration 002). It
// marks every instance, so that the sweeper of one installation never
// takes another's instances for orphans.
func (s *Store) ID(ctx context.Context) (string, error) {
	var id string
	if err := s.Pool.QueryRow(ctx, "select id::text from drill_store order by created_at limit 1").Scan(&id); err != nil {
		return "", fmt.Errorf("state database identity: %w", err)
	}
	return id, nil
}

// StoreOpts configures OpenStore.
type StoreOpts struct {
	// StatementTimeout for every connection (default 30s).
	StatementTimeout time.Duration
	// MaxConns of the pool (default 8).
	MaxConns int32
}

// OpenStore connects to the state database at url. The url may carry a
// password: it never appears in errors.
func OpenStore(ctx context.Context, url string, opts StoreOpts) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("state database URL is invalid (want postgres://user:password@host:port/db or key=value form)")
	}
	if opts.StatementTimeout <= 0 {
		opts.StatementTimeout = 30 * time.Second
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 8
	}
	cfg.MaxConns = opts.MaxConns
	rp := cfg.ConnConfig.RuntimeParams
	rp["application_name"] = "drill"
	rp["statement_timeout"] = strconv.FormatInt(opts.StatementTimeout.Milliseconds(), 10)
	rp["idle_in_transaction_session_timeout"] = "60000"
	rp["TimeZone"] = "UTC"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("state database: %w", verify.RedactConnErr(err))
	}
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("state database %s:%d/%s unreachable: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, verify.RedactConnErr(err))
	}
	return &Store{Pool: pool}, nil
}

// Migrate applies pending migrations (the app's and river's).
func (s *Store) Migrate(ctx context.Context) (migrations.Result, error) {
	return migrations.Up(ctx, s.Pool)
}

// Close closes the pool.
func (s *Store) Close() { s.Pool.Close() }

// CreateRunParams describes a new run.
type CreateRunParams struct {
	Spec        *Spec
	Policy      Policy
	Status      Status
	Trigger     string
	TriggeredBy string
}

// ErrDrillBusy is returned by CreateRun when the drill already has a queued
// or running run: a drill never runs twice at the same time.
var ErrDrillBusy = errors.New("drill already has a queued or running run")

// CreateRun inserts a run and returns it. q may be a transaction (nil: the
// pool). It fails with ErrDrillBusy while another run of the drill is
// queued or running.
func (s *Store) CreateRun(ctx context.Context, q Querier, p CreateRunParams) (*Run, error) {
	if q == nil {
		q = s.Pool
	}
	policy, err := json.Marshal(p.Policy)
	if err != nil {
		return nil, err
	}
	r := &Run{Drill: p.Spec.Name, Status: p.Status, Trigger: p.Trigger, TriggeredBy: p.TriggeredBy,
		Policy: p.Policy, Objectives: p.Spec.Objectives}
	err = q.QueryRow(ctx, `insert into drill_runs (drill, status, trigger, triggered_by, spec, objective_rto_seconds, objective_rpo_seconds)
		values ($1, $2, $3, $4, $5, $6, $7) returning id, created_at`,
		r.Drill, r.Status, r.Trigger, r.TriggeredBy, policy, objectiveSeconds(r.Objectives.RTO), objectiveSeconds(r.Objectives.RPO)).
		Scan(&r.ID, &r.CreatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.ConstraintName == "drill_runs_one_active" {
		var active int64
		_ = s.Pool.QueryRow(ctx, "select id from drill_runs where drill = $1 and status in ('queued', 'running')", r.Drill).Scan(&active)
		return nil, fmt.Errorf("%w: run %d of drill %s", ErrDrillBusy, active, r.Drill)
	}
	if err != nil {
		return nil, fmt.Errorf("record run: %w", err)
	}
	return r, nil
}

// Querier is a pool, a connection or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Store) exec(ctx context.Context, what, sql string, args ...any) error {
	if _, err := s.Pool.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("record %s: %w", what, err)
	}
	return nil
}

// StartRun marks a run running from startedAt until at most deadline, on worker.
func (s *Store) StartRun(ctx context.Context, id int64, startedAt, deadline time.Time, worker string) error {
	return s.exec(ctx, "run start", `update drill_runs set status = 'running', started_at = $2, deadline_at = $3,
		heartbeat_at = $2, worker = $4 where id = $1`, id, startedAt, deadline, worker)
}

// Heartbeat records that the process carrying out a run is alive.
func (s *Store) Heartbeat(ctx context.Context, id int64, at time.Time) error {
	return s.exec(ctx, "heartbeat", `update drill_runs set heartbeat_at = $2 where id = $1 and finished_at is null`, id, at)
}

// StartPhase records that a phase began.
func (s *Store) StartPhase(ctx context.Context, runID int64, seq int, name string, at time.Time) error {
	return s.exec(ctx, "phase start", `insert into drill_phases (run_id, seq, name, started_at) values ($1, $2, $3, $4)`,
		runID, seq, name, at)
}

// FinishPhase records that a phase ended, with its error if any.
func (s *Store) FinishPhase(ctx context.Context, runID int64, seq int, at time.Time, phaseErr string) error {
	return s.exec(ctx, "phase end", `update drill_phases set finished_at = $3, error = $4 where run_id = $1 and seq = $2`,
		runID, seq, at, nullString(phaseErr))
}

// SetBackup records which backup a run restores.
func (s *Store) SetBackup(ctx context.Context, runID int64, b Backup) error {
	var details []byte
	if len(b.Details) > 0 {
		details, _ = json.Marshal(b.Details)
	}
	return s.exec(ctx, "backup", `update drill_runs set backup_id = $2, backup_created_at = $3, backup_created_at_source = $4,
		backup_format = $5, backup_size_bytes = $6, backup_database = $7, backup_details = $8 where id = $1`,
		runID, b.ID, b.CreatedAt, b.CreatedAtSource, b.Format, b.SizeBytes, nullString(b.Database), details)
}

// IntentHook runs inside the transaction that records a target's intent,
// so that what it writes (a dead-man teardown job) commits with it.
type IntentHook func(ctx context.Context, tx pgx.Tx, targetID int64) error

// RecordTargetIntent records, before anything is created, the instance a
// run is about to create, and runs hook (when set) in the same
// transaction. It returns the target record's id.
func (s *Store) RecordTargetIntent(ctx context.Context, in Instance, hook IntentHook) (int64, error) {
	details, _ := json.Marshal(in.Details)
	var id int64
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `insert into drill_targets (run_id, type, instance_id, details, state)
			values ($1, $2, $3, $4, 'intended') returning id`, in.RunID, in.Type, in.ID, details).Scan(&id)
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
func (s *Store) SetTargetState(ctx context.Context, targetID int64, in Instance, state string, at time.Time, destroyErr string) error {
	details, _ := json.Marshal(in.Details)
	return s.exec(ctx, "target state", `update drill_targets set state = $2, details = $3,
		created_at = case when $2 = 'created' then $4 else created_at end,
		torn_down_at = case when $2 = 'destroyed' then $4 else torn_down_at end,
		destroy_error = $5 where id = $1`,
		targetID, state, details, at, nullString(destroyErr))
}

// AddCheck records one check result.
func (s *Store) AddCheck(ctx context.Context, runID int64, seq int, c Check, r CheckResult) error {
	params, _ := json.Marshal(c)
	return s.exec(ctx, "check", `insert into drill_checks (run_id, seq, name, type, params, expected, actual, passed, duration_seconds, error)
		values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		runID, seq, r.Name, r.Type, params, r.Expected, r.Actual, r.Passed, r.Duration.Seconds(), nullString(r.Error))
}

// Outcome is how a run ended.
type Outcome struct {
	Status     Status
	Reason     string
	Error      string
	FinishedAt time.Time
	RTO        *time.Duration
	RPO        *time.Duration
	DataRPO    *time.Duration
	RTOMet     *bool
	RPOMet     *bool
}

// FinishRun records a run's outcome and seals the run into its drill's
// hash chain, in one transaction.
func (s *Store) FinishRun(ctx context.Context, runID int64, o Outcome) error {
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `update drill_runs set status = $2, reason = $3, error = $4, finished_at = $5,
			rto_seconds = $6, rpo_seconds = $7, data_rpo_seconds = $8, rto_met = $9, rpo_met = $10 where id = $1`,
			runID, o.Status, nullString(o.Reason), nullString(o.Error), o.FinishedAt,
			optSeconds(o.RTO), optSeconds(o.RPO), optSeconds(o.DataRPO), o.RTOMet, o.RPOMet)
		if err != nil {
			return err
		}
		return s.seal(ctx, tx, runID, o.FinishedAt)
	})
	if err != nil {
		return fmt.Errorf("record run outcome: %w", err)
	}
	return nil
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
