package statedb

import (
	"context"
	"drill/drills"
	"time"

	"github.com/jackc/pgx/v5"
)

// DrillStatus is the latest activity of one drill.
type DrillStatus struct {
	Drill   string
	LastRun *drills.Run
	// LastFinished is the newest finished run (LastRun may still run).
	LastFinished  *drills.Run
	LastSuccessAt *time.Time
	FirstRunAt    *time.Time
}

// DrillStatuses returns, per drill name, its newest run and the finish
// time of its newest passed run (drill init's restore, which checks
// nothing, is no success): seven queries at most, whatever the number of drills.
func (s *Store) DrillStatuses(ctx context.Context, names []string) (map[string]*DrillStatus, error) {
	out := map[string]*DrillStatus{}
	for _, n := range names {
		out[n] = &DrillStatus{Drill: n}
	}
	rows, err := s.Pool.Query(ctx, `select d.name,
			(select id from drill_runs where drill = d.name order by id desc limit 1),
			(select id from drill_runs where drill = d.name and finished_at is not null order by id desc limit 1),
			(select max(finished_at) from drill_runs where drill = d.name and status = `+sqlPassed+` and trigger <> `+lit(drills.TriggerInit)+`),
			(select created_at from drill_runs where drill = d.name order by id limit 1)
		from unnest($1::text[]) as d(name)`, names)
	if err != nil {
		return nil, err
	}
	var name string
	var lastID, finishedID *int64
	var lastSuccess, firstRun *time.Time
	ids := map[string]int64{}
	finished := map[int64]string{}
	_, err = pgx.ForEachRow(rows, []any{&name, &lastID, &finishedID, &lastSuccess, &firstRun}, func() error {
		out[name].LastSuccessAt, out[name].FirstRunAt = lastSuccess, firstRun
		if lastID != nil {
			ids[name] = *lastID
		}
		if finishedID != nil {
			finished[*finishedID] = name
		}
		lastSuccess, lastID, finishedID, firstRun = nil, nil, nil, nil
		return nil
	})
	if err != nil {
		return nil, err
	}
	list := make([]int64, 0, len(ids)+len(finished))
	for _, id := range ids {
		list = append(list, id)
	}
	for id := range finished {
		list = append(list, id)
	}
	runs, err := s.runsWhere(ctx, "id = any($1)", list)
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		if ids[r.Drill] == r.ID {
			out[r.Drill].LastRun = r
		}
		if _, ok := finished[r.ID]; ok {
			out[r.Drill].LastFinished = r
		}
	}
	return out, nil
}
