package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"drill/drills/drilltest"

	"github.com/jackc/pgx/v5"
)

// BenchmarkDrillVsByHand measures `drill run` of a local drill of a pgbench
// dump (scale DRILL_BENCH_SCALE, default 50: 5M rows) against restoring
// the same dump by hand on the running server: createdb, pg_restore
// -j<cores>, ANALYZE, a count(*), dropdb. The two alternate which goes
// first, so that neither always pays for the other's writes still being
// flushed. x-byhand is drill's whole command (process start, state
// database, provisioning, restore, a row_count check, teardown); rto-x-byhand
// is the RTO drill records (start to verified copy). Goal: x-byhand ≤ 0.9.
func BenchmarkDrillVsByHand(b *testing.B) {
	scale := 50
	if n, err := strconv.Atoi(os.Getenv("DRILL_BENCH_SCALE")); err == nil && n > 0 {
		scale = n
	}
	bin := drilltest.Binaries(b)
	src := drilltest.NewDatabase(b)
	if out, err := exec.Command(bin.Path("pgbench"), "-i", "-q", "-s", strconv.Itoa(scale), src).CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	backups := drilltest.BackupDir(b)
	dump := filepath.Join(backups, "pgbench.dump")
	drilltest.Dump(b, src, "-Fc", "-f", dump)
	config := filepath.Join(b.TempDir(), "drill.yaml")
	yaml := fmt.Sprintf(`drills:
  - name: pgbench
    source: { type: pgdump, location: %s }
    target: { type: local, dir: %s }
    checks:
      - type: row_count
        table: public.pgbench_accounts
        equals: %d
`, backups, drilltest.SharedDir(b), scale*100000)
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		b.Fatal(err)
	}
	env := []string{"DRILL_DATABASE_URL=" + drilltest.NewDatabase(b), "DRILL_CONFIG=" + config}
	if r := drill(b, env, "migrate"); r.code != 0 {
		b.Fatalf("migrate: %s", r.stderr)
	}
	server := drilltest.ServerURL(b)
	jobs := strconv.Itoa(runtime.NumCPU())
	byHand := func() time.Duration {
		start := time.Now()
		db := "byhand_" + strconv.FormatInt(time.Now().UnixNano(), 36)
		url := withDatabase(b, server, db)
		for _, c := range [][]string{
			{bin.Path("createdb"), "--maintenance-db", server, db},
			{bin.Path("pg_restore"), "-j", jobs, "-d", url, dump},
			{bin.Path("psql"), "-qAt", "-d", url, "-c", "ANALYZE", "-c", "select count(*) from pgbench_accounts"},
			{bin.Path("dropdb"), "--maintenance-db", server, db},
		} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				b.Fatalf("%v: %v\n%s", c, err, out)
			}
		}
		return time.Since(start)
	}
	drillRun := func() (time.Duration, float64) {
		start := time.Now()
		r := drill(b, env, "run", "pgbench", "--json")
		took := time.Since(start)
		var run struct {
			Status     string  `json:"status"`
			RTOSeconds float64 `json:"rto_seconds"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &run); err != nil || r.code != 0 || run.Status != "passed" {
			b.Fatalf("drill run: exit %d %s\n%s", r.code, r.stdout, r.stderr)
		}
		return took, run.RTOSeconds
	}
	drillRun() // the template cluster is made once per binaries, not per drill
	var hand, whole time.Duration
	var rto float64
	i := 0
	for b.Loop() {
		if i%2 == 0 {
			hand += byHand()
		}
		took, r := drillRun()
		whole += took
		rto += r
		if i%2 == 1 {
			hand += byHand()
		}
		i++
	}
	b.ReportMetric(hand.Seconds()/float64(i), "byhand-s/op")
	b.ReportMetric(whole.Seconds()/float64(i), "drill-s/op")
	b.ReportMetric(rto/float64(i), "rto-s/op")
	b.ReportMetric(whole.Seconds()/hand.Seconds(), "x-byhand")
	b.ReportMetric(rto/hand.Seconds(), "rto-x-byhand")
}

// withDatabase is the connection string of database db on the server at url.
func withDatabase(t testing.TB, url, db string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	s := fmt.Sprintf("host=%s port=%d user=%s dbname=%s", cfg.Host, cfg.Port, cfg.User, db)
	if cfg.Password != "" {
		s += " password=" + cfg.Password
	}
	return s
}
