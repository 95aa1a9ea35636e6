package local_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"drill/drills"
	"drill/drills/drilltest"
	"drill/drills/local"

	"github.com/jackc/pgx/v5"
)

// BenchmarkRestoreSettings compares the two ways pg_restore can use a
// throwaway cluster (wal_level minimal, fsync off): --jobs <cores> (data
// and indexes in parallel, each table's data in its own transaction, so
// WAL-logged) against --single-transaction (one connection; COPY into
// tables created in the same transaction skips WAL). One backup holds one
// big table (pgbench, 2M rows), the other 16 tables of 125k rows with two
// indexes each. single-x-jobs is the single transaction's time over the
// jobs' (above 1: --jobs wins).
func BenchmarkRestoreSettings(b *testing.B) {
	bin := drilltest.Binaries(b)
	dir := b.TempDir()
	oneTable := drilltest.NewDatabase(b)
	if out, err := exec.Command(bin.Path("pgbench"), "-i", "-q", "-s", "20", oneTable).CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	manyTables := drilltest.NewDatabase(b)
	for i := range 16 {
		drilltest.Exec(b, manyTables, fmt.Sprintf(`create table t%d (id bigint primary key, a text, b int, at timestamptz);
			insert into t%[1]d select g, md5(g::text), g %% 1000, now() from generate_series(1, 125000) g;
			create index on t%[1]d (b)`, i))
	}
	dumps := map[string]string{"one-table": filepath.Join(dir, "one.dump"), "many-tables": filepath.Join(dir, "many.dump")}
	drilltest.Dump(b, oneTable, "-Fc", "-f", dumps["one-table"])
	drilltest.Dump(b, manyTables, "-Fc", "-f", dumps["many-tables"])

	tgt, err := local.NewTarget(local.TargetConfig{Dir: drilltest.SharedDir(b)})
	if err != nil {
		b.Fatal(err)
	}
	in, err := tgt.Plan(drills.RunRef{ID: 1, Drill: "restore-settings", Deadline: time.Now().Add(time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := tgt.Provision(ctx, &in, drills.Backup{}, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tgt.Destroy(context.Background(), in) })
	c := tgt.Cluster(in)
	restore := func(dump string, args ...string) time.Duration {
		admin, err := pgx.Connect(ctx, c.SocketDSN("postgres"))
		if err != nil {
			b.Fatal(err)
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "create database bench"); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		cmd := exec.Command(bin.Path("pg_restore"), append(args, "--dbname", c.SocketDSN("bench"), dump)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("pg_restore %v: %v\n%s", args, err, out)
		}
		took := time.Since(start)
		if _, err := admin.Exec(ctx, "drop database bench"); err != nil {
			b.Fatal(err)
		}
		return took
	}
	jobs := strconv.Itoa(runtime.NumCPU())
	times := map[string]time.Duration{}
	for b.Loop() {
		for name, dump := range dumps {
			times[name+"-jobs"] += restore(dump, "--jobs", jobs)
			times[name+"-single"] += restore(dump, "--single-transaction")
		}
	}
	for name := range dumps {
		b.ReportMetric(times[name+"-jobs"].Seconds()/float64(b.N), name+"-jobs-s/op")
		b.ReportMetric(times[name+"-single"].Seconds()/float64(b.N), name+"-single-s/op")
		b.ReportMetric(times[name+"-single"].Seconds()/times[name+"-jobs"].Seconds(), name+"-single-x-jobs")
	}
}
