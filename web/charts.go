package web

import (
	"fmt"
	"html"
	"html/template"
	"strings"
	"time"

	"drill/drills"
	"drill/drills/statedb"
)

// trendChart draws one measure (RTO or RPO) of the last runs as an inline
// SVG line chart over time, scaled to the data: the objective is a dashed
// line when it is within twice the largest value, else a note that it is
// above the chart. Failed runs are red dots. Every number is computed
// here; the only text is escaped.
func trendChart(title string, points []statedb.RunPoint, pick func(statedb.RunPoint) *time.Duration, objective time.Duration) template.HTML {
	const w, h, left, right, top, bottom = 640.0, 190.0, 56.0, 12.0, 22.0, 26.0
	vals, idx, maxV := series(points, pick)
	objectiveShown := objective > 0 && objective.Seconds() <= 2*maxV
	if objectiveShown {
		maxV = max(maxV, objective.Seconds())
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`, w, h, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%.0f" y="15" class="chart-title">%s</text>`, left, html.EscapeString(title))
	if len(vals) == 0 {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" class="chart-empty">no measured runs yet</text></svg>`, left, h/2)
		return template.HTML(b.String())
	}
	maxV *= 1.15
	if maxV <= 0 {
		maxV = 1
	}
	// Runs sit at their start times.
	t0, t1 := points[0].StartedAt, points[len(points)-1].StartedAt
	span := t1.Sub(t0).Seconds()
	x := func(i int) float64 {
		if span <= 0 {
			return left + (w-left-right)/2
		}
		return left + (w-left-right)*points[i].StartedAt.Sub(t0).Seconds()/span
	}
	y := func(v float64) float64 { return top + (h-top-bottom)*(1-v/maxV) }
	// axes and scale
	fmt.Fprintf(&b, `<line class="axis" x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f"/>`, left, y(0), w-right, y(0))
	for _, frac := range []float64{0.5, 1} {
		v := maxV / 1.15 * frac
		fmt.Fprintf(&b, `<text class="tick" x="%.0f" y="%.1f" text-anchor="end">%s</text>`, left-6, y(v)+4, drills.HumanDuration(time.Duration(v*float64(time.Second))))
		fmt.Fprintf(&b, `<line class="grid" x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f"/>`, left, y(v), w-right, y(v))
	}
	if objective > 0 && !objectiveShown {
		fmt.Fprintf(&b, `<text class="objective-label" x="%.0f" y="15" text-anchor="end">objective %s: far above every run</text>`, w-right, drills.HumanDuration(objective))
	}
	if objectiveShown {
		oy := y(objective.Seconds())
		fmt.Fprintf(&b, `<line class="objective" x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f"/>`, left, oy, w-right, oy)
		fmt.Fprintf(&b, `<text class="objective-label" x="%.0f" y="%.1f" text-anchor="end">objective %s</text>`, w-right, oy-4, drills.HumanDuration(objective))
	}
	var line []string
	for k, v := range vals {
		line = append(line, fmt.Sprintf("%.1f,%.1f", x(idx[k]), y(v)))
	}
	fmt.Fprintf(&b, `<polyline class="trend" points="%s"/>`, strings.Join(line, " "))
	for k, v := range vals {
		p := points[idx[k]]
		class := "pt-pass"
		if p.Status == drills.StatusFailed {
			class = "pt-fail"
		}
		if objective > 0 && v > objective.Seconds() {
			class += " pt-over"
		}
		fmt.Fprintf(&b, `<circle class="%s" cx="%.1f" cy="%.1f" r="4"><title>run %d, %s: %s</title></circle>`,
			class, x(idx[k]), y(v), p.ID, p.StartedAt.UTC().Format("2006-01-02"), drills.HumanDuration(time.Duration(v*float64(time.Second))))
	}
	layout := "2006-01-02"
	if span < 2*86400 {
		layout = "01-02 15:04"
	}
	first, last := t0.UTC().Format(layout), t1.UTC().Format(layout)
	fmt.Fprintf(&b, `<text class="tick" x="%.0f" y="%.0f">%s</text><text class="tick" x="%.0f" y="%.0f" text-anchor="end">%s</text>`,
		left, h-6, first, w-right, h-6, last)
	if span > 0 {
		mid := t0.Add(time.Duration(span/2) * time.Second).UTC().Format(layout)
		fmt.Fprintf(&b, `<text class="tick" x="%.0f" y="%.0f" text-anchor="middle">%s</text>`, left+(w-left-right)/2, h-6, mid)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// series is the values, in seconds, that pick finds in points, the index
// in points of the run each is of, and the largest of them (0 for none).
func series(points []statedb.RunPoint, pick func(statedb.RunPoint) *time.Duration) (vals []float64, idx []int, maxV float64) {
	for i, p := range points {
		if d := pick(p); d != nil {
			vals = append(vals, d.Seconds())
			idx = append(idx, i)
			maxV = max(maxV, d.Seconds())
		}
	}
	return vals, idx, maxV
}

// timeline draws the phases of a run as bars on one time axis.
func timeline(run *drills.Run) template.HTML {
	if run.StartedAt == nil || len(run.Phases) == 0 {
		return ""
	}
	start := *run.StartedAt
	end := start
	for _, p := range run.Phases {
		if p.FinishedAt != nil && p.FinishedAt.After(end) {
			end = *p.FinishedAt
		}
	}
	total := max(end.Sub(start).Seconds(), 0.001)
	const w, row, left, right = 640.0, 26.0, 90.0, 120.0
	h := row*float64(len(run.Phases)) + 8
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="timeline" viewBox="0 0 %.0f %.0f" role="img" aria-label="phase timeline">`, w, h)
	for i, p := range run.Phases {
		y := 4 + float64(i)*row
		x0 := left + (w-left-right)*p.StartedAt.Sub(start).Seconds()/total
		dur := p.Duration()
		width := max((w-left-right)*dur.Seconds()/total, 2)
		class := "bar-ok"
		label := drills.HumanDuration(dur)
		switch {
		case p.Error != "":
			class, label = "bar-fail", label+" — failed"
		case p.FinishedAt == nil:
			class, label = "bar-running", "running"
		}
		fmt.Fprintf(&b, `<text class="tick" x="%.0f" y="%.1f" text-anchor="end">%s</text>`, left-8, y+row/2+3, html.EscapeString(string(p.Name)))
		fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.0f" rx="3"><title>%s: %s</title></rect>`,
			class, x0, y+3, width, row-8, html.EscapeString(string(p.Name)), html.EscapeString(label))
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f">%s</text>`, x0+width+6, y+row/2+3, html.EscapeString(label))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
