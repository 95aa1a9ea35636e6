package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"drill/drills"
	"drill/drills/statedb"
	"drill/jobs"
	"drill/verify"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticRoot embed.FS

var staticFS, _ = fs.Sub(staticRoot, "static")

var funcs = template.FuncMap{
	"dur": func(d *time.Duration) string {
		if d == nil {
			return "—"
		}
		return drills.HumanDuration(*d)
	},
	"objective": func(d time.Duration) string {
		if d <= 0 {
			return "none"
		}
		return drills.HumanDuration(d)
	},
	"when": func(t *time.Time) string {
		if t == nil {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"ago": func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return drills.HumanDuration(time.Since(*t).Round(time.Second)) + " ago"
	},
	"met": func(b *bool) string {
		switch {
		case b == nil:
			return ""
		case *b:
			return "met"
		}
		return "missed"
	},
	"at":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"secs":    func(d time.Duration) string { return drills.HumanDuration(d) },
	"bytes":   drills.HumanBytes,
	"percent": func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
	"plural":  verify.Plural,
	// pairs renders a map as "k: v · k: v", in key order.
	"pairs": func(m map[string]string) string {
		var out []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			out = append(out, k+": "+m[k])
		}
		return strings.Join(out, " · ")
	},
	"short": func(s string) string {
		if len(s) > 160 {
			return s[:160] + "…"
		}
		return s
	},
}

// pages are parsed once: the layout plus one page each.
var pages = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range []string{"overview", "drill", "run", "schedule", "error"} {
		out[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return out
}()

// view is what every page gets.
type view struct {
	Title   string
	CSRF    string
	RiverUI bool
	Version string
	// Signed says evidence downloads are signed (DRILL_EVIDENCE_KEY).
	Signed bool
	// Refresh, when set, reloads the page every so many seconds (a run in
	// progress): no JavaScript needed.
	Refresh int
	Data    any
	// Content, when set, is the page's content rendered already (see
	// prerendered).
	Content template.HTML
}

// refresher is page data that asks to be reloaded while it changes.
type refresher interface{ RefreshSeconds() int }

// prerendered is page data whose content was rendered once for everyone,
// with a placeholder where each viewer's CSRF token goes.
type prerendered struct{ html, placeholder string }

func (p prerendered) content(csrf string) template.HTML {
	return template.HTML(strings.ReplaceAll(p.html, p.placeholder, csrf)) // the token is hex: nothing to escape
}

// prerender renders the content of page name for everyone.
func (s *Server) prerender(name string, data any) (prerendered, error) {
	var buf bytes.Buffer
	v := view{CSRF: s.csrfPlaceholder, RiverUI: s.RiverUI != nil, Version: s.Version, Signed: s.EvidenceKey != nil, Data: data}
	if err := pages[name].ExecuteTemplate(&buf, "content", v); err != nil {
		return prerendered{}, err
	}
	return prerendered{buf.String(), s.csrfPlaceholder}, nil
}

// page wraps a handler that returns a template name and its data.
func (s *Server) page(fn func(w http.ResponseWriter, r *http.Request) (string, string, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, title, data, err := fn(w, r)
		if err != nil {
			s.errorPage(w, r, err)
			return
		}
		s.render(w, r, http.StatusOK, name, title, data)
	}
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	var buf bytes.Buffer
	v := view{Title: title, CSRF: s.csrfToken(w, r), RiverUI: s.RiverUI != nil, Version: s.Version, Signed: s.EvidenceKey != nil, Data: data}
	if rf, ok := data.(refresher); ok {
		v.Refresh = rf.RefreshSeconds()
	}
	if p, ok := data.(prerendered); ok {
		v.Content = p.content(v.CSRF)
	}
	if err := pages[name].Execute(&buf, v); err != nil {
		s.Logger.Error("render", "page", name, "error", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// httpError is an error with a status for people.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func notFound(format string, args ...any) error {
	return &httpError{http.StatusNotFound, fmt.Sprintf(format, args...)}
}

func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusInternalServerError, "something went wrong; see the server log"
	var he *httpError
	if errors.As(err, &he) {
		status, msg = he.status, he.msg
	} else {
		s.Logger.Error("page", "path", r.URL.Path, "error", err.Error())
	}
	s.render(w, r, status, "error", http.StatusText(status), msg)
}

// drillRow is one drill on the overview.
type drillRow struct {
	Name, Schedule string
	Last           *drills.Run
	NextRunAt      *time.Time
	LastSuccessAt  *time.Time
	Overdue        bool
	Objectives     drills.Objectives
}

// Failing reports whether the drill's last finished run failed.
func (d drillRow) Failing() bool { return d.Last != nil && d.Last.Status == drills.StatusFailed }

func (s *Server) overview(w http.ResponseWriter, r *http.Request) (string, string, any, error) {
	statuses, err := jobs.ScheduleStatuses(r.Context(), s.Store, s.config(), s.Now())
	if err != nil {
		return "", "", nil, err
	}
	rows := make([]drillRow, 0, len(statuses))
	for _, st := range statuses {
		spec := s.config().Drill(st.Drill)
		rows = append(rows, drillRow{Name: st.Drill, Schedule: st.Schedule, Last: st.LastRun, NextRunAt: st.NextRunAt,
			LastSuccessAt: st.LastSuccessAt, Overdue: st.Overdue, Objectives: spec.Objectives})
	}
	rank := func(d drillRow) int {
		switch {
		case d.Failing():
			return 0
		case d.Overdue:
			return 1
		case d.Last == nil:
			return 2
		}
		return 3
	}
	sort.SliceStable(rows, func(i, j int) bool { return rank(rows[i]) < rank(rows[j]) })
	note, err := s.workerNote(r.Context())
	if err != nil {
		return "", "", nil, err
	}
	return "overview", "Restore drills", overviewData{Rows: rows, WorkerNote: note}, nil
}

type overviewData struct {
	Rows []drillRow
	// WorkerNote warns that scheduled drills exist but no worker runs them.
	WorkerNote string
}

// workerSilence is how long without a sign of a worker before the
// overview says none runs: a worker checks for stale runs every few seconds.
const workerSilence = 5 * time.Minute

// workerNote says when drills are scheduled but no worker has been seen.
func (s *Server) workerNote(ctx context.Context) (string, error) {
	scheduled := 0
	for _, d := range s.config().Drills {
		if d.Schedule != "" {
			scheduled++
		}
	}
	if scheduled == 0 {
		return "", nil
	}
	seen, err := s.Store.LastWorkerSeen(ctx)
	if err != nil {
		return "", err
	}
	switch {
	case seen == nil:
		return fmt.Sprintf("No worker has been seen: %d scheduled drill(s) will not run until a worker (drill worker) runs against this state database.", scheduled), nil
	case s.Now().Sub(*seen) > workerSilence:
		return fmt.Sprintf("No worker has been seen for %s: scheduled drills do not run while none does (start one: drill worker).", drills.HumanDuration(s.Now().Sub(*seen).Round(time.Minute))), nil
	}
	return "", nil
}

const pageSize = 50

type drillPageData struct {
	Spec     *drills.Spec
	Stats    statedb.DrillStats
	Runs     []*drills.Run
	RTOChart template.HTML
	RPOChart template.HTML
	NextPage int64
	CanRun   bool
}

func (s *Server) drillPage(w http.ResponseWriter, r *http.Request) (string, string, any, error) {
	spec := s.config().Drill(r.PathValue("name"))
	if spec == nil {
		return "", "", nil, notFound("no drill named %q", r.PathValue("name"))
	}
	before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	// The history is the same for everyone (the Run now form's token is
	// put in per viewer): many viewers cost one set of queries and one
	// rendering a second.
	type loaded struct {
		p   prerendered
		err error
	}
	v := s.pageData.get(r.Context(), fmt.Sprintf("drill\x00%s\x00%d", spec.Name, before), func(ctx context.Context) (any, bool) {
		d, err := s.drillHistory(ctx, spec, before)
		if err != nil {
			return loaded{err: err}, false
		}
		p, err := s.prerender("drill", d)
		return loaded{p, err}, err == nil
	}).(loaded)
	if v.err != nil {
		return "", "", nil, v.err
	}
	return "drill", "Drill " + spec.Name, v.p, nil
}

// drillHistory is a page of a drill's runs (before a run id, or the
// newest), its counts and its RTO and RPO trends.
func (s *Server) drillHistory(ctx context.Context, spec *drills.Spec, before int64) (drillPageData, error) {
	runs, err := s.Store.Runs(ctx, statedb.RunFilter{Drill: spec.Name, Limit: pageSize, BeforeID: before})
	if err != nil {
		return drillPageData{}, err
	}
	stats, err := s.Store.Stats(ctx, spec.Name)
	if err != nil {
		return drillPageData{}, err
	}
	trend, err := s.Store.Trend(ctx, spec.Name, 60)
	if err != nil {
		return drillPageData{}, err
	}
	d := drillPageData{Spec: spec, Stats: stats, Runs: runs, CanRun: s.Enqueue != nil,
		RTOChart: trendChart("RTO (start → verified copy), last runs", trend, func(p statedb.RunPoint) *time.Duration { return p.RTO }, spec.Objectives.RTO),
		RPOChart: trendChart("RPO (start − backup time), last runs", trend, func(p statedb.RunPoint) *time.Duration { return p.RPO }, spec.Objectives.RPO)}
	if len(runs) == pageSize {
		d.NextPage = runs[len(runs)-1].ID
	}
	return d, nil
}

type runPageData struct {
	Run      *drills.Run
	Timeline template.HTML
	// SQL is what each check runs, by check name.
	SQL map[string]string
	// LogTail is the end of what the restore programs printed; LogProblem
	// says when it is not the log the run's record has the digest of.
	LogTail    string
	LogProblem string
	// SignoffAs is who a sign-off from this request is recorded as, when
	// the server knows (basic auth, a trusted proxy); else the form asks.
	SignoffAs string
	// DrillKnown says the run's drill is in the config (its page exists).
	DrillKnown bool
	// Now is what a run in progress is doing (its latest progress line,
	// or the phase it is in when the line is from an earlier phase), and
	// since when.
	Now   string
	NowAt *time.Time
}

// nowDoing says what a run in progress does: its latest progress line
// while it belongs to the phase under way, else that phase.
func nowDoing(run *drills.Run) (string, *time.Time) {
	if run.FinishedAt != nil || len(run.Phases) == 0 {
		return "", nil
	}
	cur := run.Phases[len(run.Phases)-1]
	if cur.FinishedAt != nil {
		return "", nil
	}
	if run.Progress != "" && run.ProgressAt != nil && !run.ProgressAt.Before(cur.StartedAt) {
		return run.Progress, run.ProgressAt
	}
	return string(cur.Name) + " under way", &cur.StartedAt
}

// RefreshSeconds reloads the page of a run in progress every 5 seconds.
func (d runPageData) RefreshSeconds() int {
	if d.Run.FinishedAt == nil {
		return 5
	}
	return 0
}

// logTailLines is how much of the restore log the run page shows.
const logTailLines = 40

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[… %d lines above; the whole log is in the evidence bundle …]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func (s *Server) runPage(w http.ResponseWriter, r *http.Request) (string, string, any, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return "", "", nil, notFound("no run %q", r.PathValue("id"))
	}
	run, err := s.Store.Run(r.Context(), id)
	if errors.Is(err, drills.ErrRunNotFound) {
		return "", "", nil, notFound("no run %d", id)
	}
	if err != nil {
		return "", "", nil, err
	}
	d := runPageData{Run: run, Timeline: timeline(run), SQL: map[string]string{}, SignoffAs: s.knownPerson(r),
		DrillKnown: s.config().Drill(run.Drill) != nil}
	d.Now, d.NowAt = nowDoing(run)
	for _, c := range run.Policy.Checks {
		name := c.Name
		if name == "" {
			name = c.DefaultName()
		}
		d.SQL[name] = c.SQLText()
	}
	log, err := s.Store.RestoreLog(r.Context(), id)
	if err != nil {
		return "", "", nil, err
	}
	d.LogTail = tailLines(log, logTailLines)
	switch {
	case log == "":
	case run.RestoreLogSHA256 == "" && run.FinishedAt != nil:
		d.LogProblem = "the run's record has no digest of this log: it is not part of the evidence"
	case run.FinishedAt != nil && run.RestoreLogSHA256 != "" && drills.LogDigest(log) != run.RestoreLogSHA256:
		// (while a run goes on, its log and digest are rewritten as it grows)
		d.LogProblem = "this log does not match the digest in the run's record: it was changed after the run"
	}
	return "run", fmt.Sprintf("Run %d of %s", run.ID, run.Drill), d, nil
}

type scheduleRow struct {
	Drill, Schedule, Timezone string
	Upcoming                  []time.Time
	More                      int
}

// upcomingShown is how many future runs the schedule page lists per drill.
const upcomingShown = 12

func (s *Server) schedulePage(w http.ResponseWriter, r *http.Request) (string, string, any, error) {
	now := s.Now()
	yearOut := now.AddDate(1, 0, 0)
	var rows []scheduleRow
	for _, d := range s.config().Drills {
		sched := d.Timetable()
		if sched == nil {
			continue
		}
		row := scheduleRow{Drill: d.Name, Schedule: d.Schedule, Timezone: d.ScheduleTimezone}
		for t := sched.Next(now); !t.IsZero() && t.Before(yearOut); t = sched.Next(t) {
			if len(row.Upcoming) < upcomingShown {
				row.Upcoming = append(row.Upcoming, t)
			} else {
				row.More++
			}
			if row.More > 10000 {
				break
			}
		}
		rows = append(rows, row)
	}
	return "schedule", "Upcoming drills", rows, nil
}

// runNow queues a run from the drill page's button.
func (s *Server) runNow(w http.ResponseWriter, r *http.Request) {
	if !s.validCSRF(r) {
		http.Error(w, "forbidden: missing or invalid CSRF token; reload the page and try again", http.StatusForbidden)
		return
	}
	spec := s.config().Drill(r.PathValue("name"))
	if spec == nil {
		s.errorPage(w, r, notFound("no drill named %q", r.PathValue("name")))
		return
	}
	if s.Enqueue == nil {
		s.errorPage(w, r, &httpError{http.StatusServiceUnavailable, "this server cannot queue runs"})
		return
	}
	run, err := s.Enqueue(r.Context(), spec, drills.TriggerManual, s.who(r, "web"))
	if errors.Is(err, drills.ErrDrillBusy) {
		s.errorPage(w, r, &httpError{http.StatusConflict, fmt.Sprintf("%s already has a queued or running run; it was not queued again", spec.Name)})
		return
	}
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	s.changed() // the drill's history shows the new run at once
	http.Redirect(w, r, fmt.Sprintf("/runs/%d", run.ID), http.StatusSeeOther)
}

// signoff records a review or corrective note from the run page's form.
// The signer is the person the server knows (a trusted proxy's user, the
// basic-auth user); else the name typed in the form, marked as typed.
func (s *Server) signoff(w http.ResponseWriter, r *http.Request) {
	if !s.validCSRF(r) {
		http.Error(w, "forbidden: missing or invalid CSRF token; reload the page and try again", http.StatusForbidden)
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.errorPage(w, r, notFound("no run %q", r.PathValue("id")))
		return
	}
	kind := r.PostFormValue("kind")
	note := strings.TrimSpace(r.PostFormValue("note"))
	by := s.knownPerson(r)
	if by != "" && !s.fromTrustedProxy(r) {
		// Anyone with the shared token may give any basic-auth name.
		by += " (basic-auth user name, not verified: the token is shared)"
	}
	if by == "" {
		if typed := strings.TrimSpace(r.PostFormValue("by")); typed != "" {
			by = typed + " (name typed on the web page from " + clientHost(r) + ")"
		}
	}
	switch {
	case kind != drills.SignoffReview && kind != drills.SignoffCorrective:
		s.errorPage(w, r, &httpError{http.StatusBadRequest, "kind must be review or corrective"})
		return
	case note == "" || len(note) > 2000:
		s.errorPage(w, r, &httpError{http.StatusBadRequest, "a sign-off needs a note (at most 2000 characters): what was reviewed, or what was corrected"})
		return
	case by == "" || len(by) > 300:
		s.errorPage(w, r, &httpError{http.StatusBadRequest, "a sign-off needs the name of who signs"})
		return
	}
	_, err = s.Store.AddSignoff(r.Context(), id, drills.Signoff{Kind: kind, SignedBy: by, Note: note, SignedAt: s.Now()})
	if errors.Is(err, drills.ErrRunNotFound) {
		s.errorPage(w, r, notFound("no run %d", id))
		return
	}
	if err != nil {
		s.errorPage(w, r, &httpError{http.StatusConflict, err.Error()})
		return
	}
	s.changed()
	http.Redirect(w, r, fmt.Sprintf("/runs/%d#signoffs", id), http.StatusSeeOther)
}
