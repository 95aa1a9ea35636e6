// Package jobs runs drills on river: client setup, workers, periodic
// schedules, the dead-man teardown and the sweeper.
package jobs
