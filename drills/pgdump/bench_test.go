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

// BenchmarkS3Fetch measures fetching a 512 MB backup from the S3 test
// server over loopback (ranged parts side by side) against copying the
// same file on local disk, in the same run ("x-local-copy"; the drill's
// goal is ≤ 1.1x the same drill from a local file), and the memory the
// fetch allocated ("alloc-MB/op", the in-process S3 server's included).
func BenchmarkS3Fetch(b *testing.B) {
	const size = 512 << 20
	dir := b.TempDir()
	dump, err := os.ReadFile(drilltest.DumpAs(b, drilltest.Shop(b), "custom", filepath.Join(dir, "shop.dump")))
	if err != nil {
		b.Fatal(err)
	}
	big := append(dump, make([]byte, size-len(dump))...)
	local := filepath.Join(dir, "big.dump")
	if err := os.WriteFile(local, big, 0o600); err != nil {
		b.Fatal(err)
	}
	s := drilltest.NewS3(b)
	s.Bucket(b, "backups")
	s.Put(b, "backups", "orders/big.dump", big)
	big = nil
	src, err := pgdump.NewSource(context.Background(), pgdump.SourceConfig{Location: "s3://backups/orders/"})
	if err != nil {
		b.Fatal(err)
	}
	backup, err := src.Latest(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	var fetch, copyTime time.Duration
	var alloc uint64
	for b.Loop() {
		spool := b.TempDir()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		if _, err := backup.Fetch(context.Background(), spool, nil); err != nil {
			b.Fatal(err)
		}
		fetch += time.Since(start)
		runtime.ReadMemStats(&after)
		alloc += after.TotalAlloc - before.TotalAlloc
		start = time.Now()
		if out, err := exec.Command("cp", local, filepath.Join(spool, "copy.dump")).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v %s", err, out)
		}
		copyTime += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(fetch.Seconds()/n*1000, "fetch-ms/op")
	b.ReportMetric(copyTime.Seconds()/n*1000, "copy-ms/op")
	b.ReportMetric(fetch.Seconds()/copyTime.Seconds(), "x-local-copy")
	b.ReportMetric(float64(alloc)/n/(1<<20), "alloc-MB/op")
}
