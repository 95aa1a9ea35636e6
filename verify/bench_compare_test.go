package verify_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"drill/drills/drilltest"
	"drill/verify"

	"github.com/jackc/pgx/v5"
)

// compareRows is the size of the tables the compare benchmark compares.
const compareRows = 2_000_000

// accounts returns a new database with a pgbench_accounts-like table of
// compareRows rows, then runs extra.
func accounts(b *testing.B, extra ...string) string {
	b.Helper()
	url := drilltest.NewDatabase(b)
	drilltest.Exec(b, url, append([]string{
		"create table acc (aid int primary key, bid int not null, abalance int not null, filler char(84), updated_at timestamptz not null)",
		fmt.Sprintf(`insert into acc select g, g / 100000, (g::bigint * 7919) %% 100000, '', '2026-01-01'::timestamptz + g * interval '1 second'
			from generate_series(1, %d) g`, compareRows),
	}, append(extra, "vacuum analyze")...)...)
	return url
}

// BenchmarkCompare measures the compare check of two identical 2M-row
// tables against checksumming both once ("x-checksum-both", goal ≤ 1.5),
// one changed row against the identical case ("x-identical", goal ≤ 2),
// and a data-diff-style md5 of every 10,000-key chunk on both sides
// against compare ("md5-chunks-x", how many times slower it is; goal ≥ 5),
// all in the same run.
func BenchmarkCompare(b *testing.B) {
	restored := accounts(b)
	same := accounts(b)
	changed := accounts(b, "update acc set abalance = abalance + 1 where aid = 1234567")
	ctx := context.Background()
	opts := verify.Opts{StatementTimeout: time.Hour}
	conn, err := verify.Connect(ctx, restored, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(ctx) })
	compare := func(src, want string) time.Duration {
		start := time.Now()
		r := verify.RunOne(ctx, conn, verify.Check{Type: verify.TypeCompare, Name: "c", Table: "acc", SourceURL: src}, opts)
		took := time.Since(start)
		if !strings.Contains(r.Actual, want) {
			b.Fatalf("compare: %+v", r)
		}
		return took
	}
	checksum := func(url string) time.Duration {
		c, err := verify.Connect(ctx, url, opts)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close(ctx)
		start := time.Now()
		r := verify.RunOne(ctx, c, verify.Check{Type: verify.TypeChecksum, Name: "s", Table: "acc"}, opts)
		if !r.Passed {
			b.Fatalf("checksum: %+v", r)
		}
		return time.Since(start)
	}
	md5Chunks := func(src string) time.Duration {
		var conns []*pgx.Conn
		for _, u := range []string{restored, src} {
			c, err := verify.Connect(ctx, u, opts)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close(ctx)
			conns = append(conns, c)
		}
		start := time.Now()
		for lo := 1; lo <= compareRows; lo += 10000 {
			var sums [2]string
			for i, c := range conns {
				if err := c.QueryRow(ctx, `select md5(string_agg(md5(t::text), '' order by aid)) from acc t where aid >= $1 and aid < $2`, lo, lo+10000).Scan(&sums[i]); err != nil {
					b.Fatal(err)
				}
			}
			if sums[0] != sums[1] {
				b.Fatalf("chunk %d differs", lo)
			}
		}
		return time.Since(start)
	}
	// Each measure reads tables just read (as warm as the one before it):
	// three databases of 2M rows do not all fit in memory here.
	var both, identical, oneChanged, md5 time.Duration
	for b.Loop() {
		checksum(restored)
		checksum(same)
		both += checksum(restored) + checksum(same)
		identical += compare(same, "2,000,000 rows compared, 0 differences")
		checksum(restored)
		checksum(changed)
		oneChanged += compare(changed, "aid 1234567 changed")
		checksum(restored)
		checksum(same)
		md5 += md5Chunks(same)
	}
	n := float64(b.N)
	b.ReportMetric(both.Seconds()/n*1000, "checksum-both-ms/op")
	b.ReportMetric(identical.Seconds()/n*1000, "compare-ms/op")
	b.ReportMetric(identical.Seconds()/both.Seconds(), "x-checksum-both")
	b.ReportMetric(oneChanged.Seconds()/identical.Seconds(), "x-identical")
	b.ReportMetric(md5.Seconds()/identical.Seconds(), "md5-chunks-x")
}
