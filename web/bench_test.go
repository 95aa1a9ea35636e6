package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
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

// scaleRuns and scaleDrills are the store of the at-scale benchmark.
const (
	scaleRuns   = 100_000
	scaleDrills = 500
)

// seedAtScale inserts scaleRuns finished runs spread over scaleDrills
// drills (d-000 … d-499), with phases, checks and targets, set-based.
func seedAtScale(b *testing.B, store *statedb.Store) {
	b.Helper()
	drilltest.Exec(b, drilltestURL(b, store),
		fmt.Sprintf(`insert into drill_runs (drill, status, reason, error, trigger, triggered_by, created_at, started_at, finished_at,
			backup_id, backup_created_at, backup_created_at_source, backup_format, rto_seconds, rpo_seconds,
			objective_rto_seconds, objective_rpo_seconds, rto_met, rpo_met)
		 select 'd-' || lpad((g %% %[2]d)::text, 3, '0'), case when g %% 10 = 0 then 'failed' else 'passed' end, case when g %% 10 = 0 then 'check_failed' end,
			case when g %% 10 = 0 then '1 of 2 checks failed' end, 'schedule', 'schedule@host',
			now() - (%[1]d + 1 - g) * interval '1 minute', now() - (%[1]d + 1 - g) * interval '1 minute', now() - (%[1]d + 1 - g) * interval '1 minute' + interval '5 minutes',
			's3://backups/x/' || g || '.dump', now() - (%[1]d + 1 - g) * interval '1 minute' - interval '3 hours', 'archive header', 'custom',
			240 + g %% 120, 10800 + g %% 600, 1800, 93600, true, true
		 from generate_series(1, %[1]d) g`, scaleRuns, scaleDrills),
		`insert into drill_phases (run_id, seq, name, started_at, finished_at)
		 select r.id, p.seq, p.name, r.started_at + (p.seq - 1) * interval '1 minute', r.started_at + p.seq * interval '1 minute'
		 from drill_runs r, (values (1, 'locate'), (2, 'provision'), (3, 'restore'), (4, 'verify'), (5, 'teardown')) p(seq, name)`,
		`insert into drill_checks (run_id, seq, name, type, expected, actual, passed, duration_seconds)
		 select r.id, c.seq, c.name, c.type, '>= 1', '1000', r.status = 'passed' or c.seq = 1, 0.5
		 from drill_runs r, (values (1, 'orders', 'row_count'), (2, 'no negatives', 'sql')) c(seq, name, type)`,
		`insert into drill_targets (run_id, type, instance_id, state, created_at, torn_down_at)
		 select id, 'local', '/tmp/drill-x-' || id, 'destroyed', started_at, finished_at from drill_runs`,
		`analyze`,
	)
}

// BenchmarkPagesAtScale serves the overview, a drill's history, a run's
// page, /api/runs and /metrics over real HTTP on loopback from a store of
// 100,000 runs of 500 drills, to 50 clients at once (a bounded load
// generator), and reports each page's p99 latency ("p99-ms"; goal < 50)
// beside /healthz's in the same run.
func BenchmarkPagesAtScale(b *testing.B) {
	store := drilltest.Store(b)
	seedAtScale(b, store)
	cfg := &drills.Config{OverdueGrace: 24 * time.Hour}
	for i := range scaleDrills {
		cfg.Drills = append(cfg.Drills, drilltest.SeedSpec(fmt.Sprintf("d-%03d", i)))
	}
	srv := httptest.NewServer((&web.Server{Store: store, Config: cfg, Version: "bench"}).Handler())
	defer srv.Close()
	var runID int64
	if err := store.Pool.QueryRow(context.Background(), "select max(id) / 2 from drill_runs").Scan(&runID); err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	const clients, perClient = 50, 8
	for _, page := range []string{"/healthz", "/", "/drills/d-042", fmt.Sprintf("/runs/%d", runID), "/api/runs?limit=50", "/metrics"} {
		b.Run(page, func(b *testing.B) {
			var all []time.Duration
			for b.Loop() {
				lat := make([]time.Duration, clients*perClient)
				var wg sync.WaitGroup
				for c := range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for k := range perClient {
							start := time.Now()
							resp, err := client.Get(srv.URL + page)
							if err == nil {
								_, _ = io.Copy(io.Discard, resp.Body)
								resp.Body.Close()
							}
							if err != nil || resp.StatusCode != http.StatusOK {
								b.Errorf("%s: %v %v", page, err, resp)
								return
							}
							lat[c*perClient+k] = time.Since(start)
						}
					}()
				}
				wg.Wait()
				all = append(all, lat...)
			}
			slices.Sort(all)
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		})
	}
}
