package evidence

import (
	"fmt"
	"sort"
	"time"

	"drill/drills"
)

// Coverage statuses of a schedule period.
const (
	CoveragePassed  = "passed"  // a run in the period passed
	CoverageFailed  = "failed"  // runs in the period, none passed
	CoverageMissing = "missing" // the period is over and no run was made in it
	CoverageOpen    = "open"    // the period is not over and no run was made yet
)

// Coverage is one schedule period of one drill: whether it was drilled.
type Coverage struct {
	Drill  string  `json:"drill"`
	Period string  `json:"period"`
	Status string  `json:"status"`
	Runs   []int64 `json:"runs"`
	// Note explains a status, such as a period before the drill's first
	// run (missing all the same: nothing was drilled then).
	Note string `json:"note,omitempty"`
}

// ScheduledDrill is a drill whose periods are covered: its schedule and
// since when it has existed (its first run, if any).
type ScheduledDrill struct {
	Name, Schedule, Timezone string
	Since                    time.Time
}

// periodKind is the calendar unit a schedule is covered by.
type periodKind int

const (
	day periodKind = iota
	week
	month
	quarter
	half
	year
)

// kindOf maps a schedule to the calendar unit of its period: quarterly
// drills by quarter, monthly by month, weekly by ISO week, anything more
// frequent by day; cron schedules by their longest gap between ticks.
func kindOf(s *drills.Schedule, at time.Time) periodKind {
	p := s.Period(at)
	switch {
	case p >= 360*24*time.Hour:
		return year
	case p >= 150*24*time.Hour:
		return half
	case p >= 85*24*time.Hour:
		return quarter
	case p >= 27*24*time.Hour:
		return month
	case p >= 6*24*time.Hour:
		return week
	}
	return day
}

// periodOf returns the period holding t: its start, its end and its name
// (2026-Q3, 2026-H2, 2026-07, 2026-W27, 2026-07-01, 2026).
func periodOf(k periodKind, t time.Time) (time.Time, time.Time, string) {
	y, m, d := t.Date()
	loc := t.Location()
	switch k {
	case year:
		s := time.Date(y, 1, 1, 0, 0, 0, 0, loc)
		return s, s.AddDate(1, 0, 0), fmt.Sprintf("%d", y)
	case half:
		h := (int(m)-1)/6 + 1
		s := time.Date(y, time.Month(6*(h-1)+1), 1, 0, 0, 0, 0, loc)
		return s, s.AddDate(0, 6, 0), fmt.Sprintf("%d-H%d", y, h)
	case quarter:
		q := (int(m)-1)/3 + 1
		s := time.Date(y, time.Month(3*(q-1)+1), 1, 0, 0, 0, 0, loc)
		return s, s.AddDate(0, 3, 0), fmt.Sprintf("%d-Q%d", y, q)
	case month:
		s := time.Date(y, m, 1, 0, 0, 0, 0, loc)
		return s, s.AddDate(0, 1, 0), s.Format("2006-01")
	case week:
		wd := (int(t.Weekday()) + 6) % 7 // Monday 0
		s := time.Date(y, m, d-wd, 0, 0, 0, 0, loc)
		iy, iw := s.ISOWeek()
		return s, s.AddDate(0, 0, 7), fmt.Sprintf("%d-W%02d", iy, iw)
	}
	s := time.Date(y, m, d, 0, 0, 0, 0, loc)
	return s, s.AddDate(0, 0, 1), s.Format("2006-01-02")
}

// maxPeriods bounds the periods one drill is covered for (ten years of
// days).
const maxPeriods = 3660

// CoverageOf tells, for each scheduled drill, each period of its schedule
// from since (else the drill's first run) to until (at most now), whether it
// was drilled: passed, failed or missing (open while the period is not
// over at now). A run counts in the period it started in (or was
// created in, if it never started).
func CoverageOf(scheduled []ScheduledDrill, runs []drills.RunJSON, since, until, now time.Time) ([]Coverage, error) {
	byDrill := map[string][]drills.RunJSON{}
	for _, r := range runs {
		byDrill[r.Drill] = append(byDrill[r.Drill], r)
	}
	sort.Slice(scheduled, func(i, j int) bool { return scheduled[i].Name < scheduled[j].Name })
	var out []Coverage
	for _, d := range scheduled {
		sch, err := drills.ParseSchedule(d.Schedule, d.Timezone)
		if err != nil {
			return nil, fmt.Errorf("drill %s: %w", d.Name, err)
		}
		from := since // the whole window: a period before the drill existed was not drilled either
		if from.IsZero() {
			from = d.Since
		}
		to := until
		if to.IsZero() || to.After(now) {
			to = now
		}
		if from.IsZero() || from.After(to) {
			continue
		}
		kind := kindOf(sch, from)
		at := from.In(sch.Location)
		for i := 0; i < maxPeriods && !at.After(to); i++ {
			start, end, name := periodOf(kind, at)
			c := Coverage{Drill: d.Name, Period: name, Status: CoverageMissing, Runs: []int64{}}
			failed := false
			for _, r := range byDrill[d.Name] {
				when := runTime(r)
				if when.Before(start) || !when.Before(end) {
					continue
				}
				c.Runs = append(c.Runs, r.ID)
				if r.Status == drills.StatusPassed {
					c.Status = CoveragePassed
				} else {
					failed = true
				}
			}
			switch {
			case c.Status == CoveragePassed:
			case failed:
				c.Status = CoverageFailed
			case end.After(now):
				c.Status = CoverageOpen
			case !d.Since.IsZero() && !end.After(d.Since):
				c.Note = "before the drill's first run (" + d.Since.UTC().Format("2006-01-02") + ")"
			}
			out = append(out, c)
			at = end
		}
	}
	return out, nil
}

func runTime(r drills.RunJSON) time.Time {
	s := r.CreatedAt
	if r.StartedAt != nil {
		s = *r.StartedAt
	}
	t, _ := time.Parse(time.RFC3339, s)
	return t
}
