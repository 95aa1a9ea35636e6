package drills

import (
	"context"
	"encoding/json"
	"time"
)

// Instance is an isolated database made by a Target for one run.
type Instance struct {
	// Type is the target type ("local", "rds").
	Type string `json:"type"`
	// ID identifies the instance for teardown: a directory, an instance id.
	ID string `json:"id"`
	// RunID and Drill name the run the instance belongs to; Destroy checks
	// them against the marks on the instance.
	RunID int64  `json:"run_id"`
	Drill string `json:"drill"`
	// StoreID names the state database that records the instance.
	StoreID string `json:"store_id,omitempty"`
	// Details are facts about the instance worth keeping (port, engine
	// version, class). Never secrets.
	Details map[string]string `json:"details,omitempty"`
	// State is the backend's own state between calls (how often an RDS
	// instance was polled, whether its restore was requested): only the
	// backend that wrote it reads it, the store keeps it apart from the
	// record's facts, and nothing renders or exports it. Never secrets.
	State json.RawMessage `json:"-"`
	// DSN connects to the restored database. It may carry a password and is
	// never stored, logged, rendered or exported.
	DSN string `json:"-"`
}

// Target makes an isolated database from a backup and destroys it again.
//
// The Runner calls Plan, records the planned Instance in the store (intent),
// then calls Provision and Restore; it calls Destroy on every path, also
// when Provision failed half-way.
type Target interface {
	// Plan names the instance a run will get, without creating anything.
	Plan(run RunRef) (Instance, error)
	// Provision creates the instance named by in and makes it reachable. It
	// may fill in.Details.
	Provision(ctx context.Context, in *Instance, b Backup, progress Progress) error
	// Restore loads b into the instance and sets in.DSN to the restored database.
	Restore(ctx context.Context, in *Instance, b Backup, progress Progress) error
	// Destroy removes an instance this tool created for in.RunID. It returns
	// an error wrapping ErrNotManaged, and removes nothing, when the instance
	// does not carry the tool's marks for that run. Destroying an instance
	// that no longer exists is not an error.
	Destroy(ctx context.Context, in Instance) error
	// ConnectHint tells a person how to reach a kept instance, without secrets.
	ConnectHint(in Instance) string
}

// RunRef names a run for a Target.
type RunRef struct {
	ID       int64
	Drill    string
	Deadline time.Time
	// StoreID is the identity of the state database holding the run.
	StoreID string
}

// Progress receives human-readable progress of long work ("downloaded 40 MiB
// of 120 MiB"). It may be nil.
type Progress func(msg string)

// Say calls p when it is set.
func (p Progress) Say(msg string) {
	if p != nil {
		p(msg)
	}
}

// Sweepable is a Target that can list the instances carrying this tool's
// marks, so that the sweeper finds ones the store has no record of.
type Sweepable interface {
	Target
	// Managed lists every instance with the tool's marks (only those).
	Managed(ctx context.Context) ([]Instance, error)
}

// DefaultKeep is how long drill run --keep keeps an instance.
const DefaultKeep = time.Hour

// KeptUntilDetail is the instance detail that says until when a kept
// instance stays (RFC 3339); the sweeper removes it afterwards.
const KeptUntilDetail = "kept_until"

// Keeper is a Target whose instances die with the process that made them
// unless told otherwise: Keep makes an instance outlive it (drill run
// --keep).
type Keeper interface {
	Keep(ctx context.Context, in Instance) error
}

// RestoreLogger is a Target that keeps what its restore programs printed
// (capped, secrets redacted); RestoreLog returns it once, after Restore.
type RestoreLogger interface {
	RestoreLog(in Instance) string
}

// LiveRestoreLogger is a RestoreLogger that can tell, while Restore runs,
// what its programs printed so far: the run page shows its end.
type LiveRestoreLogger interface {
	RestoreLogSoFar(in Instance) string
}

// CheckPreparer is a Target that installs what some checks need in the
// restored database before they run (the amcheck extension, which the
// checks' read-only role cannot create).
type CheckPreparer interface {
	PrepareChecks(ctx context.Context, in Instance, checkTypes []string) error
}

// Recoverer is a Target that restores physical backups to a point in
// time: RecoveredTo returns the time of the last transaction the recovery
// replayed (zero when none was), once Restore has succeeded.
type Recoverer interface {
	RecoveredTo(in Instance) time.Time
}
