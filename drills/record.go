package drills

import (
	"context"
	"drill/verify"
	"errors"
	"time"
)

// ErrRunNotFound is returned by Store.Run for an unknown run id.
var ErrRunNotFound = errors.New("run not found")

// ErrRunEnded is returned by the recorder's writes to a run that has
// already finished: its process was stopped long enough for the sweeper
// to end it, then went on. Nothing is written: a sealed run stays as it
// was sealed, and no instance is created for it.
var ErrRunEnded = errors.New("the run has already ended (the sweeper took its process for dead)")

// CreateRunParams describes a new run.
type CreateRunParams struct {
	Spec        *Spec
	Policy      Policy
	Status      Status
	Trigger     Trigger
	TriggeredBy string
}

// ErrDrillBusy is returned by CreateRun when the drill already has a queued
// or running run: a drill never runs twice at the same time.
var ErrDrillBusy = errors.New("drill already has a queued or running run")

// IntentHook runs inside the transaction that records a target's intent,
// so that what it writes (a dead-man teardown job) commits with it. tx is
// the recorder's transaction (for the state database, a pgx.Tx).
type IntentHook func(ctx context.Context, tx any, targetID int64) error

// Recorder keeps the record of runs: the Runner commits every transition
// of a run to it before going on. statedb.Store is the one that keeps it
// in PostgreSQL; the Runner's tests use one in memory.
type Recorder interface {
	// ID names the installation; it marks every instance created.
	ID(ctx context.Context) (string, error)
	// CreateRun records a new run; ErrDrillBusy while the drill has a
	// queued or running run.
	CreateRun(ctx context.Context, p CreateRunParams) (*Run, error)
	StartRun(ctx context.Context, id int64, startedAt, deadline time.Time, by Executor) error
	Heartbeat(ctx context.Context, id int64, at time.Time) error
	StartPhase(ctx context.Context, runID int64, seq int, name Phase, at time.Time) error
	FinishPhase(ctx context.Context, runID int64, seq int, at time.Time, phaseErr string) error
	SetBackup(ctx context.Context, runID int64, b Backup) error
	// RecordTargetIntent records an instance before it is created, and
	// runs hook in the same transaction; it returns the target's id.
	RecordTargetIntent(ctx context.Context, in Instance, hook IntentHook) (int64, error)
	SetTargetState(ctx context.Context, targetID int64, in Instance, state TargetState, at time.Time, destroyErr string) error
	AddCheck(ctx context.Context, runID int64, seq int, c Check, r CheckResult) error
	// SetProgress records what a run in progress is doing now.
	SetProgress(ctx context.Context, runID int64, msg string, at time.Time) error
	// SetRestoreLog records what the restore programs printed.
	SetRestoreLog(ctx context.Context, runID int64, log string) error
	// SetTables records the inventory of the restored database.
	SetTables(ctx context.Context, runID int64, tables []verify.TableInfo) error
	// LastInventory returns the inventory of the drill's newest passed run
	// before runID with the same source, or nil when there is none.
	LastInventory(ctx context.Context, drill string, runID int64) (*verify.Inventory, error)
	SetWaiting(ctx context.Context, runID int64, until time.Time) error
	ClearWaiting(ctx context.Context, runID int64, at time.Time) error
	// FinishRun records the outcome and seals the run.
	FinishRun(ctx context.Context, runID int64, o Outcome) error
	// RunSeal returns the seal of a finished run, checked against r.
	RunSeal(ctx context.Context, r *Run) (*SealState, error)
}

// Outcome is how a run ended.
type Outcome struct {
	Status     Status
	Reason     Reason
	Error      string
	FinishedAt time.Time
	RTO        *time.Duration
	RPO        *time.Duration
	DataRPO    *time.Duration
	RTOMet     *bool
	RPOMet     *bool
}
