package evidence

import (
	"fmt"
	"testing"
)

// Missing periods fold into one row only while they follow each other: a
// passed period in between ends the row.
func TestGapRowsFoldOnlyConsecutivePeriods(t *testing.T) {
	cov := []Coverage{
		{Drill: "a", Period: "2026-01-01", Status: CoverageMissing},
		{Drill: "a", Period: "2026-01-02", Status: CoveragePassed},
		{Drill: "a", Period: "2026-01-03", Status: CoverageMissing},
		{Drill: "a", Period: "2026-01-04", Status: CoverageMissing},
		{Drill: "a", Period: "2026-01-05", Status: CoverageFailed, Runs: []int64{7}},
		{Drill: "a", Period: "2026-01-06", Status: CoverageMissing},
		{Drill: "b", Period: "2026-01-01", Status: CoverageMissing},
	}
	var got []string
	for _, g := range gapRows(cov) {
		got = append(got, fmt.Sprintf("%s %s..%s %s %d", g.Drill, g.Period, g.Last, g.Status, g.Periods))
	}
	want := []string{"a 2026-01-01.. missing 1", "a 2026-01-03..2026-01-04 missing 2", "a 2026-01-05.. failed 1", "a 2026-01-06.. missing 1", "b 2026-01-01.. missing 1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rows\n%q\nwant\n%q", got, want)
	}
}
