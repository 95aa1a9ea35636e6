package evidence

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"sort"
	"time"

	"drill/drills"
)

//go:embed report.html.tmpl
var reportTemplate string

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"dur":     fmtSeconds,
	"optdur":  optSeconds,
	"met":     fmtMet,
	"deref":   str,
	"percent": func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
}).Parse(reportTemplate))

// drillSummary is one drill in the report's summary.
type drillSummary struct {
	Drill, Schedule          string
	Runs, Passed             int
	PassRate                 float64
	WorstRTO, WorstRPO       *float64
	ObjRTO, ObjRPO           *float64
	LastSuccess              string
	WorstRTOMet, WorstRPOMet *bool
}

type reportData struct {
	GeneratedAt string
	Version     string
	Filters     Filters
	Summaries   []drillSummary
	Runs        []decoded
}

func renderReport(records []decoded, f Filters, now time.Time, version string) ([]byte, error) {
	byDrill := map[string]*drillSummary{}
	var order []string
	for _, d := range records {
		r := d.Rec.Run
		s := byDrill[r.Drill]
		if s == nil {
			s = &drillSummary{Drill: r.Drill, Schedule: d.Rec.Policy.Schedule}
			byDrill[r.Drill] = s
			order = append(order, r.Drill)
		}
		s.Runs++
		if r.Status == drills.StatusPassed {
			s.Passed++
			if r.FinishedAt != nil && *r.FinishedAt > s.LastSuccess {
				s.LastSuccess = *r.FinishedAt
			}
		}
		s.ObjRTO, s.ObjRPO = r.Objectives.RTOSeconds, r.Objectives.RPOSeconds
		s.WorstRTO = worst(s.WorstRTO, r.RTOSeconds)
		s.WorstRPO = worst(s.WorstRPO, r.RPOSeconds)
	}
	sort.Strings(order)
	data := reportData{GeneratedAt: now.UTC().Format(time.RFC3339), Version: version, Filters: f, Runs: records}
	for _, name := range order {
		s := byDrill[name]
		s.PassRate = float64(s.Passed) / float64(s.Runs)
		s.WorstRTOMet = within(s.WorstRTO, s.ObjRTO)
		s.WorstRPOMet = within(s.WorstRPO, s.ObjRPO)
		data.Summaries = append(data.Summaries, *s)
	}
	var buf bytes.Buffer
	if err := reportTmpl.Execute(&buf, data); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func worst(cur, v *float64) *float64 {
	if v == nil || (cur != nil && *cur >= *v) {
		return cur
	}
	return v
}

func within(v, objective *float64) *bool {
	if v == nil || objective == nil {
		return nil
	}
	ok := *v <= *objective
	return &ok
}

// fmtSeconds renders seconds for people.
func fmtSeconds(s float64) string {
	return drills.HumanDuration(time.Duration(s * float64(time.Second)))
}

func optSeconds(f *float64) string {
	if f == nil {
		return "—"
	}
	return fmtSeconds(*f)
}

func fmtMet(b *bool) string {
	switch {
	case b == nil:
		return ""
	case *b:
		return "met"
	}
	return "MISSED"
}
