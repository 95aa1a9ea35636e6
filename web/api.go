package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"drill/drills"
	"drill/drills/evidence"
	"drill/drills/statedb"
	"drill/jobs"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func apiError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// drillJSON is one drill in GET /api/drills.
type drillJSON struct {
	Name          string          `json:"name"`
	Schedule      string          `json:"schedule"`
	NextRunAt     *string         `json:"next_run_at"`
	LastRun       *drills.RunJSON `json:"last_run"`
	LastSuccessAt *string         `json:"last_success_at"`
	Overdue       bool            `json:"overdue"`
	Objectives    struct {
		RTOSeconds *float64 `json:"rto_seconds"`
		RPOSeconds *float64 `json:"rpo_seconds"`
	} `json:"objectives"`
}

func secondsJSON(d time.Duration) *float64 {
	if d <= 0 {
		return nil
	}
	s := d.Seconds()
	return &s
}

func (s *Server) apiDrills(w http.ResponseWriter, r *http.Request) {
	statuses, err := jobs.ScheduleStatuses(r.Context(), s.Store, s.config(), s.Now())
	if err != nil {
		s.Logger.Error("api drills", "error", err.Error())
		apiError(w, http.StatusInternalServerError, "state database error")
		return
	}
	out := make([]drillJSON, 0, len(statuses))
	for _, st := range statuses {
		spec := s.config().Drill(st.Drill)
		d := drillJSON{Name: st.Drill, Schedule: st.Schedule, NextRunAt: drills.OptRFC3339(st.NextRunAt), LastSuccessAt: drills.OptRFC3339(st.LastSuccessAt), Overdue: st.Overdue}
		d.Objectives.RTOSeconds, d.Objectives.RPOSeconds = secondsJSON(spec.Objectives.RTO), secondsJSON(spec.Objectives.RPO)
		if st.LastRun != nil {
			j := st.LastRun.JSON()
			d.LastRun = &j
		}
		out = append(out, d)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) apiRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			apiError(w, http.StatusBadRequest, "limit must be a number from 1 to 500")
			return
		}
		limit = n
	}
	before, _ := strconv.ParseInt(q.Get("before"), 10, 64)
	runs, err := s.Store.Runs(r.Context(), statedb.RunFilter{Drill: q.Get("drill"), Limit: limit, BeforeID: before})
	if err != nil {
		apiError(w, http.StatusInternalServerError, "state database error")
		return
	}
	out := make([]drills.RunJSON, 0, len(runs))
	for _, run := range runs {
		out = append(out, run.JSON())
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) apiRun(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		apiError(w, http.StatusNotFound, "no such run")
		return
	}
	run, err := s.Store.Run(r.Context(), id)
	if errors.Is(err, drills.ErrRunNotFound) {
		apiError(w, http.StatusNotFound, fmt.Sprintf("no run %d", id))
		return
	}
	if err != nil {
		apiError(w, http.StatusInternalServerError, "state database error")
		return
	}
	writeJSON(w, http.StatusOK, run.JSON())
}

// apiEnqueue queues a run: 201 with {id, drill, status}, 409 while one is queued or running.
func (s *Server) apiEnqueue(w http.ResponseWriter, r *http.Request) {
	spec := s.config().Drill(r.PathValue("name"))
	if spec == nil {
		apiError(w, http.StatusNotFound, fmt.Sprintf("no drill named %q", r.PathValue("name")))
		return
	}
	if s.Enqueue == nil {
		apiError(w, http.StatusServiceUnavailable, "this server cannot queue runs")
		return
	}
	run, err := s.Enqueue(r.Context(), spec, drills.TriggerAPI, s.who(r, "api"))
	if errors.Is(err, drills.ErrDrillBusy) {
		apiError(w, http.StatusConflict, err.Error())
		return
	}
	if err != nil {
		s.Logger.Error("api enqueue", "error", err.Error())
		apiError(w, http.StatusInternalServerError, "could not queue the run")
		return
	}
	s.changed()
	writeJSON(w, http.StatusCreated, map[string]any{"id": run.ID, "drill": run.Drill, "status": run.Status})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if err := s.Store.Pool.Ping(r.Context()); err != nil {
		apiError(w, http.StatusServiceUnavailable, "state database unreachable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// evidence streams an evidence bundle (?drill=, ?since=, ?until= as dates).
func (s *Server) evidence(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := statedb.SealedFilter{Drill: q.Get("drill")}
	if f.Drill != "" {
		if err := drills.ValidName(f.Drill); err != nil { // it becomes part of the file name
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse("2006-01-02", v)
			if err != nil {
				http.Error(w, p.name+" must be a date such as 2026-01-01", http.StatusBadRequest)
				return
			}
			*p.dst = t
		}
	}
	name := "drill-evidence"
	if f.Drill != "" {
		name += "-" + f.Drill
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s.zip"`, name, s.Now().UTC().Format("20060102")))
	if _, err := evidence.Export(r.Context(), s.Store, w, evidence.ExportOpts{Filter: f, Key: s.EvidenceKey, Version: s.Version, Now: s.Now()}); err != nil {
		s.Logger.Error("evidence export", "error", err.Error())
	}
}
