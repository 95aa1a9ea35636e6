// Package jobs runs drills on river: the client and its workers (run a
// drill, dead-man teardown, sweeper, notifications), periodic schedules
// from the drills' specs, and enqueueing runs.
package jobs

import (
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// RunDrillArgs runs one drill. RunID is set when the run was recorded at
// enqueue time; scheduled runs record theirs when they start.
type RunDrillArgs struct {
	Drill   string `json:"drill" river:"unique"`
	RunID   int64  `json:"run_id,omitempty"`
	Trigger string `json:"trigger"`
}

// Kind implements river.JobArgs.
func (RunDrillArgs) Kind() string { return "drill_run" }

// activeStates: a drill has at most one job in these states.
var activeStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
	rivertype.JobStateRetryable, rivertype.JobStateScheduled,
}

// InsertOpts makes a drill's jobs unique while one is queued or running,
// and retries a crashed worker's run (it then ends as interrupted).
func (RunDrillArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: activeStates}}
}

// TeardownArgs is the dead-man job of one target: scheduled at the run's
// deadline when the target is recorded, it destroys the target unless the
// run already did.
type TeardownArgs struct {
	RunID    int64 `json:"run_id"`
	TargetID int64 `json:"target_id"`
}

// Kind implements river.JobArgs.
func (TeardownArgs) Kind() string { return "drill_teardown" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (TeardownArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 10} }

// SweepArgs runs the sweeper.
type SweepArgs struct{}

// Kind implements river.JobArgs.
func (SweepArgs) Kind() string { return "drill_sweep" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (SweepArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 1, UniqueOpts: river.UniqueOpts{ByState: activeStates}}
}

// NotifyArgs delivers one notification to one webhook. The webhook is
// named by its position in the drill's notify list, never by its URL: a
// chat webhook URL is a credential and job arguments are stored.
type NotifyArgs struct {
	Drill   string `json:"drill"`
	Webhook int    `json:"webhook"`
	Event   string `json:"event"`
	RunID   int64  `json:"run_id,omitempty"`
}

// Kind implements river.JobArgs.
func (NotifyArgs) Kind() string { return "drill_notify" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (NotifyArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 10} }

// Notification events.
const (
	EventFailed  = "drill_failed"
	EventOverdue = "drill_overdue"
)

// backoff is the delay before retry attempt n (1-based): 2s, 4s, 8s, …, at most 15 minutes.
func backoff(attempt int) time.Duration {
	d := 2 * time.Second
	for i := 1; i < attempt && d < 15*time.Minute; i++ {
		d *= 2
	}
	return min(d, 15*time.Minute)
}
