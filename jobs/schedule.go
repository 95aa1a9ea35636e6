package jobs

import (
	"time"

	"drill/drills"

	"github.com/riverqueue/river"
)

// PeriodicJobs returns a periodic job per scheduled drill, plus the
// sweeper every sweepEvery (and at start) and its cheap stale-run check
// every staleAfter/3. Only river's elected leader inserts periodic jobs,
// and each tick's job is unique: several workers on several hosts run each
// tick once.
func PeriodicJobs(cfg *drills.Config, sweepEvery, staleAfter time.Duration) ([]*river.PeriodicJob, error) {
	check := max(staleAfter/3, time.Second)
	jobs := []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(sweepEvery),
			func() (river.JobArgs, *river.InsertOpts) {
				return SweepArgs{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: sweepEvery}}
			},
			&river.PeriodicJobOpts{ID: "drill-sweep", RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(check),
			func() (river.JobArgs, *river.InsertOpts) {
				return StaleCheckArgs{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: check}}
			},
			&river.PeriodicJobOpts{ID: "drill-stale-check"}),
	}
	for _, d := range cfg.Drills {
		sched := d.Timetable()
		if sched == nil {
			continue
		}
		name := d.Name
		jobs = append(jobs, river.NewPeriodicJob(sched,
			func() (river.JobArgs, *river.InsertOpts) {
				// Ticks are told apart by their minute: a drill runs at most once a minute.
				tick := time.Now().UTC().Truncate(time.Minute).Format(time.RFC3339)
				return RunDrillArgs{Drill: name, Tick: tick, Trigger: drills.TriggerSchedule}, tickOpts
			},
			&river.PeriodicJobOpts{ID: "drill-schedule-" + name}))
	}
	return jobs, nil
}
