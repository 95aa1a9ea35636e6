package statedb

import (
	"strings"

	"drill/drills"
)

// The domain's states as SQL literals: every statement names a state
// through its typed constant (renaming one cannot leave a query behind),
// and the planner still sees constants, so partial indexes whose
// predicates name states (drill_runs_one_active, drill_targets_live)
// still match. Only constants of the drills package go through here.

// lit is a state as an SQL string literal.
func lit[T ~string](v T) string {
	return "'" + strings.ReplaceAll(string(v), "'", "''") + "'"
}

// list is states as an SQL list: ('a', 'b').
func list[T ~string](vs ...T) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = lit(v)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

var (
	sqlPassed  = lit(drills.StatusPassed)
	sqlFailed  = lit(drills.StatusFailed)
	sqlQueued  = lit(drills.StatusQueued)
	sqlRunning = lit(drills.StatusRunning)
	// sqlActive are the statuses of a run that is not over.
	sqlActive = list(drills.StatusQueued, drills.StatusRunning)
	// sqlLive are the states of a target that may exist.
	sqlLive      = list(drills.TargetIntended, drills.TargetCreated, drills.TargetDestroyFailed)
	sqlIntended  = lit(drills.TargetIntended)
	sqlCreated   = lit(drills.TargetCreated)
	sqlDestroyed = lit(drills.TargetDestroyed)
	sqlKept      = lit(drills.TargetKept)
)
