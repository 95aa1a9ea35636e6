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

func TestDoubling(t *testing.T) {
	for _, c := range []struct {
		n    int
		want time.Duration
	}{{0, 2 * time.Second}, {1, 4 * time.Second}, {3, 16 * time.Second}, {20, time.Minute}} {
		if got := Doubling(2*time.Second, c.n, time.Minute); got != c.want {
			t.Errorf("Doubling(2s, %d, 1m) = %s, want %s", c.n, got, c.want)
		}
	}
}
