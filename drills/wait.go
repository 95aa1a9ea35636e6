package drills

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// WaitError is returned by Target.Provision or Target.Restore when the
// instance is not ready yet (an RDS instance still "creating"): the caller
// should call again after After. Status says what is being waited for.
//
// A target that waits is called again with the same Instance, possibly by
// another process after a crash or a snooze: its Provision and Restore
// must carry on with what already exists.
type WaitError struct {
	After  time.Duration
	Status string
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("not ready (%s): check again in %s", e.Status, e.After)
}

// Wait returns a WaitError.
func Wait(after time.Duration, status string) error { return &WaitError{After: after, Status: status} }

// Waiting is returned by Runner.Execute when Runner.Snooze is set and the
// run waits on its target: the run is recorded as waiting until now+After,
// and Execute should be called again with the same run after After.
type Waiting struct {
	After time.Duration
}

func (w *Waiting) Error() string {
	return "run waiting for its instance; resume in " + w.After.String()
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

// RunByJob returns the run carried by a job, or nil.
func (s *Store) RunByJob(ctx context.Context, jobID int64) (*Run, error) {
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

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
