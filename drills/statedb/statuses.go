package statedb

import (
	"context"
	"drill/drills"
	"time"

	"github.com/jackc/pgx/v5"
)

// DrillStatus is the latest activity of one drill.
type DrillStatus struct {
	Drill         string
	LastRun       *drills.Run
	LastSuccessAt *time.Time
	FirstRunAt    *time.Time
}

// DrillStatuses returns, per drill name, its newest run and the finish
// time of its newest passed run: five queries, whatever the number of
// drills.
func (s *Store) DrillStatuses(ctx context.Context, names []string) (map[string]*DrillStatus, error) {
	out := map[string]*DrillStatus{}
	for _, n := range names {
		out[n] = &DrillStatus{Drill: n}
	}
	rows, err := s.Pool.Query(ctx, `select d.name,
			(select id from drill_runs where drill = d.name order by id desc limit 1),
			(select max(finished_at) from drill_runs where drill = d.name and status = 'passed'),
			(select min(created_at) from drill_runs where drill = d.name)
		from unnest($1::text[]) as d(name)`, names)
	if err != nil {
		return nil, err
	}
	var name string
	var lastID *int64
	var lastSuccess, firstRun *time.Time
	ids := map[string]int64{}
	_, err = pgx.ForEachRow(rows, []any{&name, &lastID, &lastSuccess, &firstRun}, func() error {
		out[name].LastSuccessAt, out[name].FirstRunAt = lastSuccess, firstRun
		if lastID != nil {
			ids[name] = *lastID
		}
		lastSuccess, lastID, firstRun = nil, nil, nil
		return nil
	})
	if err != nil {
		return nil, err
	}
	list := make([]int64, 0, len(ids))
	for _, id := range ids {
		list = append(list, id)
	}
	runs, err := s.runsWhere(ctx, "id = any($1)", list)
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		out[r.Drill].LastRun = r
	}
	return out, nil
}
