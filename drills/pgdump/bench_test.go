package pgdump_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"drill/drills/drilltest"
	"drill/drills/pgdump"
)

// BenchmarkDump measures drill dump (pg_dump -Fc on a snapshot, with every
// table fingerprinted side by side in the same snapshot) against pg_dump
// -Fc alone on the same database in the same run, and reports the ratio
// ("x-pg_dump").
func BenchmarkDump(b *testing.B) {
	url := drilltest.NewDatabase(b)
	var sql []string
	for i := range 8 {
		sql = append(sql,
			fmt.Sprintf("create table acc_%d (aid int primary key, bid int not null, abalance int not null, filler char(84), updated_at timestamptz not null)", i),
			fmt.Sprintf(`insert into acc_%d select g, g / 100000, (g::bigint * 7919) %% 100000, '', '2026-01-01'::timestamptz + g * interval '1 second'
				from generate_series(1, 250000) g`, i))
	}
	drilltest.Exec(b, url, append(sql, "vacuum analyze")...)
	bin := drilltest.Binaries(b)
	dir := b.TempDir()
	ctx := context.Background()
	var base, took time.Duration
	for b.Loop() {
		out := filepath.Join(dir, "plain.dump")
		start := time.Now()
		if msg, err := exec.Command(bin.Path("pg_dump"), "-Fc", "-f", out, "--dbname", url).CombinedOutput(); err != nil {
			b.Fatalf("pg_dump: %v: %s", err, msg)
		}
		base += time.Since(start)
		out = filepath.Join(dir, "drill.dump")
		start = time.Now()
		res, err := pgdump.Dump(ctx, pgdump.DumpOptions{URL: url, Out: out, Jobs: runtime.NumCPU(),
			PGDump: bin.Path("pg_dump"), PGRestore: bin.Path("pg_restore")})
		took += time.Since(start)
		if err != nil || res.Tables != 8 {
			b.Fatalf("drill dump: %v %+v", err, res)
		}
		os.Remove(out)
		os.Remove(out + ".fingerprint.json")
	}
	n := float64(b.N)
	b.ReportMetric(base.Seconds()/n*1000, "pg_dump-ms/op")
	b.ReportMetric(took.Seconds()/n*1000, "drill-dump-ms/op")
	b.ReportMetric(took.Seconds()/base.Seconds(), "x-pg_dump")
}
