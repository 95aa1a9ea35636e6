package statedb

import (
	"testing"
	"time"

	"drill/drills"
)

// A duration kept to the millisecond reads back from its seconds exactly,
// so a run's own output and its stored record print the same.
func TestSecondsRoundTrip(t *testing.T) {
	for ms := int64(0); ms < 200_000; ms += 7 {
		d := time.Duration(ms) * time.Millisecond
		s := d.Seconds()
		got := fromSeconds(&s)
		if *got != d || drills.HumanDuration(*got) != drills.HumanDuration(d) {
			t.Fatalf("%v: read back as %v (%s, printed %s)", d, *got, drills.HumanDuration(*got), drills.HumanDuration(d))
		}
	}
}
