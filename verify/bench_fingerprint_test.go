package verify_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"drill/drills/drilltest"
	"drill/verify"

	"github.com/jackc/pgx/v5"
)

// fingerprintTables is how many tables of benchRows/4 rows the
// whole-database benchmark makes.
const fingerprintTables = 8

// wholeDatabase returns a new database of fingerprintTables tables shaped
// like pgbench_accounts, 2M rows in all, dropped after the benchmark.
func wholeDatabase(b *testing.B) string {
	b.Helper()
	url := drilltest.NewDatabase(b)
	var sql []string
	for i := range fingerprintTables {
		sql = append(sql,
			fmt.Sprintf("create table acc_%d (aid int primary key, bid int not null, abalance int not null, filler char(84), updated_at timestamptz not null)", i),
			fmt.Sprintf(`insert into acc_%d select g, g / 100000, (g::bigint * 7919) %% 100000, '', '2026-01-01'::timestamptz + g * interval '1 second'
				from generate_series(1, %d) g`, i, benchRows/4))
	}
	drilltest.Exec(b, url, append(sql, "vacuum analyze")...)
	return url
}

// BenchmarkFingerprintDatabase measures the fingerprint of a whole
// database (every table's rows, checksum and schema digest, over one
// connection per core, as the fingerprint check and drill dump compute it)
// against count(*) of every table over as many connections, in the same
// run, and reports the ratio ("x-count").
func BenchmarkFingerprintDatabase(b *testing.B) {
	url := wholeDatabase(b)
	ctx := context.Background()
	jobs := max(runtime.NumCPU(), 1)
	var txs []pgx.Tx
	for range jobs {
		conn, err := verify.Connect(ctx, url, verify.Opts{StatementTimeout: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close(ctx) })
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
		if err != nil {
			b.Fatal(err)
		}
		txs = append(txs, tx)
	}
	tables, err := verify.UserTables(ctx, txs[0])
	if err != nil || len(tables) != fingerprintTables {
		b.Fatalf("tables: %v %v", tables, err)
	}
	countAll := func() {
		next := make(chan verify.Table)
		var wg sync.WaitGroup
		for _, tx := range txs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for t := range next {
					var n int64
					if err := tx.QueryRow(ctx, "select count(*) from "+t.Quoted()).Scan(&n); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		for _, t := range tables {
			next <- t
		}
		close(next)
		wg.Wait()
	}
	var base, took time.Duration
	for b.Loop() {
		start := time.Now()
		countAll()
		base += time.Since(start)
		start = time.Now()
		ms, err := verify.MeasureTables(ctx, txs, tables, true, nil)
		took += time.Since(start)
		if err != nil || ms[0].Err != nil || ms[0].Sum.Rows != benchRows/4 {
			b.Fatalf("measure: %v %+v", err, ms[0])
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(jobs), "connections")
	b.ReportMetric(base.Seconds()/n*1000, "count-ms/op")
	b.ReportMetric(took.Seconds()/n*1000, "fingerprint-ms/op")
	b.ReportMetric(took.Seconds()/base.Seconds(), "x-count")
}

// BenchmarkChecksSideBySide runs four checksum checks on four equal tables
// side by side (one connection per core, as a drill's verify phase runs
// them) and one after another, in the same run. It reports the phase's
// time against the sum of the checks' own durations in it ("x-sum", the
// issue's measure of overlap; goal ≤ 0.7 on 2 cores) and against the
// sequential run ("x-sequential": the speed-up, small where PostgreSQL
// already scans each table with parallel workers).
func BenchmarkChecksSideBySide(b *testing.B) {
	url := wholeDatabase(b)
	ctx := context.Background()
	opts := verify.Opts{StatementTimeout: time.Hour, DSN: url}
	conn, err := verify.Connect(ctx, url, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(ctx) })
	var checks []verify.Check
	for i := range 4 {
		checks = append(checks, verify.Check{Type: verify.TypeChecksum, Name: fmt.Sprint(i), Table: fmt.Sprintf("acc_%d", i)})
	}
	all := []int{0, 1, 2, 3}
	jobs := max(runtime.NumCPU(), 1)
	var failed []string
	run := func(j int) (wall, sum time.Duration) {
		start := time.Now()
		verify.SideBySide(ctx, conn, checks, all, j, opts, func(_ int, r verify.Result) {
			sum += r.Duration
			if !r.Passed {
				failed = append(failed, r.Name+": "+r.Error)
			}
		})
		return time.Since(start), sum
	}
	var seq, side, sum time.Duration
	for b.Loop() {
		w, _ := run(1)
		seq += w
		w, s := run(jobs)
		side, sum = side+w, sum+s
	}
	if len(failed) > 0 {
		b.Fatalf("checks failed: %v", failed)
	}
	n := float64(b.N)
	b.ReportMetric(float64(jobs), "connections")
	b.ReportMetric(seq.Seconds()/n*1000, "sequential-ms/op")
	b.ReportMetric(side.Seconds()/n*1000, "side-by-side-ms/op")
	b.ReportMetric(side.Seconds()/sum.Seconds(), "x-sum")
	b.ReportMetric(side.Seconds()/seq.Seconds(), "x-sequential")
}
