package jobs

import (
	"context"
	"time"

	"drill/drills"
	"drill/drills/statedb"
)

// ScheduleStatus is where a scheduled drill stands.
type ScheduleStatus struct {
	Drill     string
	Schedule  string
	Timezone  string
	NextRunAt *time.Time
	LastRun   *drills.Run
	// LastFinished is the newest finished run (LastRun may be queued or running).
	LastFinished  *drills.Run
	LastSuccessAt *time.Time
	// Overdue: the last success (or, never having passed, the first run)
	// is older than one schedule period plus the grace.
	Overdue bool
}

// ScheduleStatuses returns the status of every drill in cfg (drills
// without a schedule have no next run and are never overdue).
func ScheduleStatuses(ctx context.Context, store *statedb.Store, cfg *drills.Config, now time.Time) ([]ScheduleStatus, error) {
	names := make([]string, 0, len(cfg.Drills))
	for _, d := range cfg.Drills {
		names = append(names, d.Name)
	}
	latest, err := store.DrillStatuses(ctx, names)
	if err != nil {
		return nil, err
	}
	grace := cfg.OverdueGrace
	if grace <= 0 {
		grace = drills.DefaultOverdueGrace
	}
	out := make([]ScheduleStatus, 0, len(cfg.Drills))
	for _, d := range cfg.Drills {
		st := ScheduleStatus{Drill: d.Name, Schedule: d.Schedule, Timezone: d.ScheduleTimezone}
		if l := latest[d.Name]; l != nil {
			st.LastRun, st.LastFinished, st.LastSuccessAt = l.LastRun, l.LastFinished, l.LastSuccessAt
		}
		if sched := d.Timetable(); sched != nil {
			next := sched.Next(now)
			st.NextRunAt = &next
			since := st.LastSuccessAt
			if since == nil && latest[d.Name] != nil {
				since = latest[d.Name].FirstRunAt
			}
			st.Overdue = since != nil && now.Sub(*since) > sched.Period(now)+grace
		}
		out = append(out, st)
	}
	return out, nil
}
