package web

import (
	"context"
	"net/http"
	"time"

	"drill/drills"
	"drill/jobs"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// businessMetrics reads the state of every drill from the store at scrape time.
type businessMetrics struct {
	s                                            *Server
	lastRun, lastSuccess, rto, rpo, met, overdue *prometheus.Desc
	runs, up, altered                            *prometheus.Desc
}

func newBusinessMetrics(s *Server) *businessMetrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &businessMetrics{s: s,
		lastRun:     d("drill_last_run_timestamp_seconds", "Start time of the drill's newest finished run, labelled with its status.", "drill", "status"),
		lastSuccess: d("drill_last_success_timestamp_seconds", "Finish time of the drill's newest passed run.", "drill"),
		rto:         d("drill_rto_seconds", "RTO of the drill's newest run: start to end of verification.", "drill"),
		rpo:         d("drill_rpo_seconds", "RPO of the drill's newest run: start minus backup creation time.", "drill"),
		met:         d("drill_objective_met", "1 when the newest run met the objective, 0 when it missed it.", "drill", "objective"),
		overdue:     d("drill_overdue", "1 when the scheduled drill's last success is older than its period plus grace.", "drill"),
		runs:        d("drill_runs_total", "Finished runs, by status (passed, failed): never decreases.", "drill", "status"),
		up:          d("drill_state_database_up", "1 when the state database answered the scrape."),
		altered:     d("drill_last_run_altered", "1 when the drill's newest finished run no longer says what was sealed (integrity \"altered\").", "drill")}
}

func (m *businessMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.lastRun, m.lastSuccess, m.rto, m.rpo, m.met, m.overdue, m.runs, m.up, m.altered} {
		ch <- d
	}
}

func (m *businessMetrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	statuses, err := jobs.ScheduleStatuses(ctx, m.s.Store, m.s.config(), m.s.Now())
	if err != nil {
		gauge(m.up, 0)
		return
	}
	counts, err := m.s.Store.RunCounts(ctx)
	if err != nil {
		gauge(m.up, 0)
		return
	}
	gauge(m.up, 1)
	for _, c := range counts {
		ch <- prometheus.MustNewConstMetric(m.runs, prometheus.CounterValue, float64(c.Count), c.Drill, string(c.Status))
	}
	for _, st := range statuses {
		overdue := 0.0
		if st.Overdue {
			overdue = 1
		}
		gauge(m.overdue, overdue, st.Drill)
		if st.LastSuccessAt != nil {
			gauge(m.lastSuccess, float64(st.LastSuccessAt.Unix()), st.Drill)
		}
		r := st.LastFinished // queued and running runs change no series
		if r == nil {
			continue
		}
		if r.Seal != nil {
			altered := 0.0
			if r.Seal.Integrity == drills.IntegrityAltered {
				altered = 1
			}
			gauge(m.altered, altered, st.Drill)
		}
		if r.StartedAt != nil {
			gauge(m.lastRun, float64(r.StartedAt.Unix()), st.Drill, string(r.Status))
		}
		if r.RTO != nil {
			gauge(m.rto, r.RTO.Seconds(), st.Drill)
		}
		if r.RPO != nil {
			gauge(m.rpo, r.RPO.Seconds(), st.Drill)
		}
		for name, met := range map[string]*bool{"rto": r.RTOMet, "rpo": r.RPOMet} {
			if met != nil {
				v := 0.0
				if *met {
					v = 1
				}
				gauge(m.met, v, st.Drill, name)
			}
		}
	}
}

func (s *Server) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newBusinessMetrics(s), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
