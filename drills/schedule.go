package drills

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Named schedules, as cron expressions in the schedule's time zone (UTC
// unless schedule_timezone says otherwise).
var namedSchedules = map[string]string{
	"quarterly": "0 3 1 1,4,7,10 *", // 03:00 on the 1st of January, April, July and October
	"monthly":   "0 3 1 * *",
	"weekly":    "0 3 * * 1", // Mondays
	"daily":     "0 3 * * *",
}

// Schedule is a parsed drill schedule.
type Schedule struct {
	Spec     string
	Location *time.Location
	cron     cron.Schedule

	mu        sync.Mutex
	period    time.Duration
	periodDay time.Time
}

// parsed caches ParseSchedule: pages parse every drill's schedule on
// every request. A Schedule is read-only once made.
var parsed sync.Map // spec + "\x00" + tz → *Schedule or error

// ParseSchedule parses quarterly, monthly, weekly, daily, a 5-field cron
// expression or a descriptor such as @hourly or "@every 30m", in time
// zone tz (default UTC).
func ParseSchedule(spec, tz string) (*Schedule, error) {
	key := spec + "\x00" + tz
	if v, ok := parsed.Load(key); ok {
		if err, isErr := v.(error); isErr {
			return nil, err
		}
		return v.(*Schedule), nil
	}
	s, err := parseSchedule(spec, tz)
	if err != nil {
		parsed.Store(key, err)
		return nil, err
	}
	parsed.Store(key, s)
	return s, nil
}

func parseSchedule(spec, tz string) (*Schedule, error) {
	loc := time.UTC
	if tz != "" {
		var err error
		if loc, err = time.LoadLocation(tz); err != nil {
			return nil, fmt.Errorf("schedule_timezone %q: unknown time zone", tz)
		}
	}
	expr := strings.TrimSpace(spec)
	if named, ok := namedSchedules[strings.ToLower(expr)]; ok {
		expr = named
	}
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return nil, fmt.Errorf("schedule %q: set the time zone with schedule_timezone", spec)
	}
	parsed, err := cron.ParseStandard("CRON_TZ=" + loc.String() + " " + expr)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: want quarterly, monthly, weekly, daily or a cron expression such as \"0 3 * * 1\" (%v)", spec, err)
	}
	if every, ok := parsed.(cron.ConstantDelaySchedule); ok && every.Delay < time.Minute {
		return nil, fmt.Errorf("schedule %q: runs more than once a minute; a drill takes longer than that (use @every 1m or more)", spec)
	}
	if strings.HasPrefix(strings.TrimSpace(strings.ToLower(expr)), "@every") {
		if d, err := time.ParseDuration(strings.TrimSpace(expr[len("@every"):])); err == nil && d < time.Minute {
			return nil, fmt.Errorf("schedule %q: runs more than once a minute; a drill takes longer than that (use @every 1m or more)", spec)
		}
	}
	sch := &Schedule{Spec: spec, Location: loc, cron: parsed}
	// A cron expression may name a day that never comes (0 0 30 2 *).
	from := time.Date(2000, 1, 1, 0, 0, 0, 0, loc)
	for _, y := range []int{0, 1, 2, 3, 4} { // leap years included
		if next := parsed.Next(from.AddDate(y, 0, 0)); next.IsZero() || next.Sub(from.AddDate(y, 0, 0)) > 366*24*time.Hour {
			return nil, fmt.Errorf("schedule %q: does not run at least once a year", spec)
		}
	}
	return sch, nil
}

// Next returns the first tick after t.
func (s *Schedule) Next(t time.Time) time.Time { return s.cron.Next(t) }

// Upcoming returns the next n ticks after t.
func (s *Schedule) Upcoming(t time.Time, n int) []time.Time {
	out := make([]time.Time, 0, n)
	for i := 0; i < n; i++ {
		t = s.cron.Next(t)
		out = append(out, t)
	}
	return out
}

// Period is the longest gap between ticks over the year after t: a drill
// whose last success is older than that (plus a grace) is overdue. It is
// computed once a day per schedule.
func (s *Schedule) Period(t time.Time) time.Duration {
	day := t.UTC().Truncate(24 * time.Hour)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.periodDay.Equal(day) && s.period > 0 {
		return s.period
	}
	s.period, s.periodDay = s.computePeriod(day), day
	return s.period
}

func (s *Schedule) computePeriod(t time.Time) time.Duration {
	var longest time.Duration
	prev := s.cron.Next(t)
	end := t.AddDate(1, 0, 0)
	for i := 0; i < 10000 && prev.Before(end); i++ {
		next := s.cron.Next(prev)
		if d := next.Sub(prev); d > longest {
			longest = d
		}
		prev = next
	}
	return longest
}
