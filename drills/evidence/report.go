package evidence

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"sort"
	"strings"
	"time"

	"drill/drills"
	checks "drill/verify"
)

//go:embed report.html.tmpl
var reportTemplate string

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"dur":     fmtSeconds,
	"optdur":  optSeconds,
	"met":     fmtMet,
	"deref":   str,
	"percent": func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
	"bytes":   drills.HumanBytes,
	"ids":     runIDs,
	"plural":  checks.Plural,
	"failing": failing,
	"list":    func(ids ...int64) []int64 { return ids },
}).Parse(reportTemplate))

// drillSummary is one drill in the report's summary.
type drillSummary struct {
	Drill, Schedule    string
	Runs, Passed       int
	PassRate           float64
	WorstRTO, WorstRPO *float64
	ObjRTO, ObjRPO     *float64
	LastSuccess        string
	// WorstRTOMet and WorstRPOMet are the runs' own judgments taken
	// together: missed when any run in the bundle missed the objective
	// (a failed run meets none), nil when no run was judged.
	WorstRTOMet, WorstRPOMet *bool
}

type reportData struct {
	GeneratedAt string
	Version     string
	Filters     Filters
	Summaries   []drillSummary
	Runs        []decoded
	// Gaps are the missing and failed periods: the first thing to see.
	// GapRows are the same with a run of missing periods in one row.
	Gaps    []Coverage
	GapRows []gapRow
	// Grid is, per drill, its periods as cells, or their counts when there
	// are too many to show one by one (a daily drill over a year).
	Grid          []gridRow
	Coverage      []Coverage
	PeriodsPassed int
	OpenFailures  []decoded
	Controls      []ControlEvidence
	SigningKeyID  string
	Signed        bool
	Drills        []drillSection
}

// drillSection is one drill's part of the report: its runs, newest first.
type drillSection struct {
	Name string
	Runs []decoded
}

func renderReport(records []decoded, m *Manifest, now time.Time) ([]byte, error) {
	byDrill := map[string]*drillSummary{}
	sections := map[string]*drillSection{}
	latest := map[string]decoded{}
	var order []string
	for _, d := range records {
		r := d.Rec.Run
		s := byDrill[r.Drill]
		if s == nil {
			s = &drillSummary{Drill: r.Drill, Schedule: d.Rec.Policy.Schedule}
			byDrill[r.Drill] = s
			sections[r.Drill] = &drillSection{Name: r.Drill}
			order = append(order, r.Drill)
		}
		sections[r.Drill].Runs = append([]decoded{d}, sections[r.Drill].Runs...)
		if cur, ok := latest[r.Drill]; !ok || r.ID > cur.Rec.Run.ID {
			latest[r.Drill] = d
		}
		s.Runs++
		if r.Status == drills.StatusPassed {
			s.Passed++
			if r.FinishedAt != nil && *r.FinishedAt > s.LastSuccess {
				s.LastSuccess = *r.FinishedAt
			}
		}
		s.ObjRTO, s.ObjRPO = r.Objectives.RTOSeconds, r.Objectives.RPOSeconds
		if d.Rec.Policy.Schedule != "" { // the newest record's schedule
			s.Schedule = d.Rec.Policy.Schedule
		}
		s.WorstRTO = worst(s.WorstRTO, r.RTOSeconds)
		s.WorstRPO = worst(s.WorstRPO, r.RPOSeconds)
		s.WorstRTOMet = allMet(s.WorstRTOMet, r.Objectives.RTOMet)
		s.WorstRPOMet = allMet(s.WorstRPOMet, r.Objectives.RPOMet)
	}
	sort.Strings(order)
	data := reportData{GeneratedAt: now.UTC().Format(time.RFC3339), Version: m.ToolVersion, Filters: m.Filters, Runs: records,
		Coverage: m.Coverage, Controls: m.Controls, SigningKeyID: m.SigningKeyID, Signed: m.Signed}
	for _, c := range m.Coverage {
		switch c.Status {
		case CoverageMissing, CoverageFailed:
			data.Gaps = append(data.Gaps, c)
		case CoveragePassed:
			data.PeriodsPassed++
		}
	}
	data.GapRows = gapRows(m.Coverage)
	data.Grid = grid(m.Coverage)
	for _, name := range order {
		s := byDrill[name]
		s.PassRate = float64(s.Passed) / float64(s.Runs)
		data.Summaries = append(data.Summaries, *s)
		data.Drills = append(data.Drills, *sections[name])
		if l := latest[name]; l.Rec.Run.Status != drills.StatusPassed {
			data.OpenFailures = append(data.OpenFailures, l)
		}
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

// allMet folds a run's judgment of an objective into the drill's.
func allMet(all, run *bool) *bool {
	if run == nil || (all != nil && !*all) {
		return all
	}
	return run
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

// runIDs renders run ids as links to their sections: "#12, #15".
func runIDs(ids []int64) template.HTML {
	if len(ids) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `<a href="#run-%d">%d</a>`, id, id)
	}
	return template.HTML(b.String())
}

// failing are a check's tables that did not match.
func failing(details []drills.TableResult) []drills.TableResult {
	var out []drills.TableResult
	for _, d := range details {
		switch d.Status {
		case "match", "ok", "excluded":
		default:
			out = append(out, d)
		}
	}
	return out
}

// gapRow is one period without a passing run, or a run of missing ones.
type gapRow struct {
	Coverage
	Last    string // the last period of a run of missing ones, or ""
	Periods int
}

// gapRows lists the missing and failed periods of cov (in its order: by
// drill, then period), with consecutive missing periods of a drill (same
// note) in one row: 300 missing days read as one line, not 300. A period
// with a run in between ends a row.
func gapRows(cov []Coverage) []gapRow {
	var out []gapRow
	joinable := false // the last row ends with the period just before this one
	for _, c := range cov {
		switch c.Status {
		case CoverageMissing, CoverageFailed:
		default:
			joinable = false
			continue
		}
		if n := len(out); joinable && c.Status == CoverageMissing {
			last := &out[n-1]
			if last.Status == CoverageMissing && last.Drill == c.Drill && last.Note == c.Note {
				last.Last, last.Periods = c.Period, last.Periods+1
				continue
			}
		}
		out = append(out, gapRow{Coverage: c, Periods: 1})
		joinable = true
	}
	return out
}

// gridCells is how many periods a drill's row shows one by one.
const gridCells = 16

type gridRow struct {
	Drill  string
	Cells  []Coverage     // up to gridCells periods
	Counts map[string]int // else: how many periods have each status
}

func grid(cov []Coverage) []gridRow {
	var out []gridRow
	index := map[string]int{}
	for _, c := range cov {
		i, ok := index[c.Drill]
		if !ok {
			i = len(out)
			index[c.Drill] = i
			out = append(out, gridRow{Drill: c.Drill, Counts: map[string]int{}})
		}
		out[i].Cells = append(out[i].Cells, c)
		out[i].Counts[c.Status]++
	}
	for i := range out {
		if len(out[i].Cells) > gridCells {
			out[i].Cells = nil
		} else {
			out[i].Counts = nil
		}
	}
	return out
}
