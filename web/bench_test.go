package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"drill/drills"
	"drill/drills/drilltest"
	"drill/drills/statedb"
	"drill/web"
)

// benchRuns is the history a drill has in the page benchmarks.
const benchRuns = 10_000

// seedHistory inserts benchRuns finished runs of drill "orders", each
// with five phases and two checks, in a few set-based statements.
func seedHistory(b *testing.B, store *statedb.Store) {
	b.Helper()
	drilltest.Exec(b, drilltestURL(b, store),
		fmt.Sprintf(`insert into drill_runs (drill, status, reason, error, trigger, triggered_by, created_at, started_at, finished_at,
			backup_id, backup_created_at, backup_created_at_source, backup_format, rto_seconds, rpo_seconds,
			objective_rto_seconds, objective_rpo_seconds, rto_met, rpo_met)
		 select 'orders', case when g %% 10 = 0 then 'failed' else 'passed' end, case when g %% 10 = 0 then 'check_failed' end,
			case when g %% 10 = 0 then '1 of 2 checks failed' end, 'schedule', 'schedule@host',
			now() - (%[1]d + 1 - g) * interval '1 hour', now() - (%[1]d + 1 - g) * interval '1 hour', now() - (%[1]d + 1 - g) * interval '1 hour' + interval '5 minutes',
			's3://backups/orders/' || g || '.dump', now() - (%[1]d + 1 - g) * interval '1 hour' - interval '3 hours', 'archive header', 'custom',
			240 + g %% 120, 10800 + g %% 600, 1800, 93600, true, true
		 from generate_series(1, %[1]d) g`, benchRuns),
		`insert into drill_phases (run_id, seq, name, started_at, finished_at)
		 select r.id, p.seq, p.name, r.started_at + (p.seq - 1) * interval '1 minute', r.started_at + p.seq * interval '1 minute'
		 from drill_runs r, (values (1, 'locate'), (2, 'provision'), (3, 'restore'), (4, 'verify'), (5, 'teardown')) p(seq, name)`,
		`insert into drill_checks (run_id, seq, name, type, expected, actual, passed, duration_seconds)
		 select r.id, c.seq, c.name, c.type, '>= 1', '1000', r.status = 'passed' or c.seq = 1, 0.5
		 from drill_runs r, (values (1, 'orders', 'row_count'), (2, 'no negatives', 'sql')) c(seq, name, type)`,
		`insert into drill_targets (run_id, type, instance_id, state, created_at, torn_down_at)
		 select id, 'local', '/tmp/drill-orders-' || id, 'destroyed', started_at, finished_at from drill_runs`,
		`analyze`,
	)
}

func drilltestURL(_ *testing.B, store *statedb.Store) string {
	return store.Pool.Config().ConnString()
}

// BenchmarkPages renders the overview and a drill's history page over a
// store with benchRuns runs, against /healthz (one database round trip) in
// the same run; "x-healthz" is the ratio.
func BenchmarkPages(b *testing.B) {
	store := drilltest.Store(b)
	seedHistory(b, store)
	spec := drilltest.SeedSpec("orders")
	cfg := &drills.Config{Drills: []*drills.Spec{spec}, OverdueGrace: 24 * time.Hour}
	h := (&web.Server{Store: store, Config: cfg, Version: "bench"}).Handler()
	serve := func(path string) time.Duration {
		req := httptest.NewRequest("GET", "http://localhost"+path, nil)
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%s: %d", path, rec.Code)
		}
		return time.Since(start)
	}
	for _, page := range []string{"/", "/drills/orders", "/drills/orders?before=5000", "/api/runs?drill=orders&limit=50"} {
		b.Run(page, func(b *testing.B) {
			var base, took time.Duration
			for b.Loop() {
				base += serve("/healthz")
				took += serve(page)
			}
			n := float64(b.N)
			b.ReportMetric(took.Seconds()/n*1000, "page-ms/op")
			b.ReportMetric(base.Seconds()/n*1000, "healthz-ms/op")
			b.ReportMetric(took.Seconds()/base.Seconds(), "x-healthz")
		})
	}
}
