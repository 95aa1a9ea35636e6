package drills

import (
	"testing"
	"time"
)

// RTO and RPO are kept to the millisecond, rounded up: an overrun of an
// objective by less than a millisecond is still an overrun.
func TestUpToMillisecond(t *testing.T) {
	for _, tc := range []struct{ in, want time.Duration }{
		{0, 0},
		{time.Minute, time.Minute},
		{time.Minute + 1, time.Minute + time.Millisecond},
		{time.Minute + 999*time.Microsecond, time.Minute + time.Millisecond},
		{-1500 * time.Microsecond, -time.Millisecond},
	} {
		if got := upToMillisecond(tc.in); got != tc.want {
			t.Errorf("upToMillisecond(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
