package drills

import "time"

// SetLiveLogEvery sets how often a restore's log is written while it
// runs, and returns what puts it back.
func SetLiveLogEvery(d time.Duration) func() {
	old := liveLogEvery
	liveLogEvery = d
	return func() { liveLogEvery = old }
}
