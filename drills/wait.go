package drills

import (
	"context"
	"fmt"
	"time"
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

// Doubling is first doubled n times, at most ceiling: the delay of the
// n-th retry (from 0) of a backoff.
func Doubling(first time.Duration, n int, ceiling time.Duration) time.Duration {
	d := first
	for i := 0; i < n && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}
