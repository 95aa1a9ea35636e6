package verify_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"drill/drills/drilltest"
	"drill/verify"

	"github.com/jackc/pgx/v5"
)

// benchRows is the size of the generated table (at least 1M rows).
const benchRows = 1_000_000

var (
	benchOnce sync.Once
	benchURL  string
)

// benchConn returns a connection to a database holding bench_accounts, a
// pgbench_accounts-like table of benchRows rows, with parallel query off so
// every figure is per core.
func benchConn(b *testing.B) *pgx.Conn {
	b.Helper()
	benchOnce.Do(func() {
		benchURL = drilltest.NewDatabase(b)
		drilltest.Exec(b, benchURL,
			"create table bench_accounts (aid int primary key, bid int not null, abalance int not null, filler char(84), updated_at timestamptz not null)",
			fmt.Sprintf(`insert into bench_accounts select g, g / 100000, (g::bigint * 7919) %% 100000, '', '2026-01-01'::timestamptz + g * interval '1 second'
				from generate_series(1, %d) g`, benchRows),
			"vacuum analyze bench_accounts",
		)
	})
	conn, err := pgx.Connect(context.Background(), benchURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(context.Background(), "set max_parallel_workers_per_gather = 0"); err != nil {
		b.Fatal(err)
	}
	return conn
}

func timeQuery(b *testing.B, conn *pgx.Conn, sql string) time.Duration {
	b.Helper()
	start := time.Now()
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkChecksum measures each way of hashing a table against count(*)
// on the same table in the same run, and reports the ratio ("x-count").
// The first is the checksum drill uses.
func BenchmarkChecksum(b *testing.B) {
	conn := benchConn(b)
	candidates := []struct{ name, sql string }{
		{"drill-sum-hash_record_extended", verify.ChecksumSQL("bench_accounts")},
		{"sum-hashtextextended-text", "select count(*), coalesce(sum(hashtextextended(t::text, 0)), 0)::text from bench_accounts t"},
		{"md5-string_agg-ordered", "select md5(string_agg(t::text, '' order by aid)) from bench_accounts t"},
	}
	for _, c := range candidates {
		b.Run(c.name, func(b *testing.B) {
			var base, took time.Duration
			for b.Loop() {
				base += timeQuery(b, conn, "select count(*) from bench_accounts")
				took += timeQuery(b, conn, c.sql)
			}
			n := float64(b.N)
			b.ReportMetric(base.Seconds()/n*1000, "count-ms/op")
			b.ReportMetric(took.Seconds()/n*1000, "checksum-ms/op")
			b.ReportMetric(took.Seconds()/base.Seconds(), "x-count")
		})
	}
}
