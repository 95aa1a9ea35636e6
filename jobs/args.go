// Package jobs runs drills on river: the client and its workers (run a
// drill, dead-man teardown, sweeper, notifications), periodic schedules
// from the drills' specs, and enqueueing runs.
package jobs

import (
	"drill/drills"
	"time"

	"github.com/riverqueue/river"
)

// RunDrillArgs runs one drill. RunID is set when the run was recorded at
// enqueue time; scheduled runs record theirs when they start, and carry
// their tick (the minute it fell on), which makes each tick's job unique.
//
// A drill never runs twice at once because the state database allows one
// queued or running run per drill; jobs themselves are not unique by
// drill, since the job of a worker that died stays "running" until river
// rescues it, and that must not block the drill's next runs.
type RunDrillArgs struct {
	Drill   string         `json:"drill" river:"unique"`
	Tick    string         `json:"tick,omitempty" river:"unique"`
	RunID   int64          `json:"run_id,omitempty"`
	Trigger drills.Trigger `json:"trigger"`
}

// Kind implements river.JobArgs.
func (RunDrillArgs) Kind() string { return "drill_run" }

// QueueDrills holds drill runs; its size is the worker's --concurrency.
// Sweeps, teardowns and notifications use river's default queue.
const QueueDrills = "drills"

// InsertOpts retries a crashed worker's run (the retry ends it as interrupted).
func (RunDrillArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 3, Queue: QueueDrills}
}

// tickOpts make a scheduled tick's job unique: however many leaders insert
// it, and even after it completed, a tick runs once.
var tickOpts = &river.InsertOpts{Queue: QueueDrills, UniqueOpts: river.UniqueOpts{ByArgs: true}}

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

// InsertOpts implements river.JobArgsWithInsertOpts. Sweeps are unique per
// period (see PeriodicJobs), not while one runs: a sweep whose worker died
// must not hold back the next ones.
func (SweepArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 1} }

// StaleCheckArgs runs the cheap part of the sweeper: ending runs whose
// process died and queued runs no worker will carry out, and destroying
// their instances. It runs every --stale-after/3, so a dead run is over
// within about 1.3 times --stale-after; the full sweep (orphans of every
// target) stays at --sweep-every.
type StaleCheckArgs struct{}

// Kind implements river.JobArgs.
func (StaleCheckArgs) Kind() string { return "drill_stale_check" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (StaleCheckArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 1} }

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
	return drills.Doubling(2*time.Second, attempt-1, 15*time.Minute)
}
