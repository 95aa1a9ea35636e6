package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"drill/drills/drilltest"
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
	scale := benchScale()
	backups, dump := pgbenchDump(b, scale, "-Fc")
	env := benchDrill(b, fmt.Sprintf("{ type: pgdump, location: %s }", backups), scale)
	bin := drilltest.Binaries(b)
	server := drilltest.ServerURL(b)
	jobs := strconv.Itoa(runtime.NumCPU())
	byHand := func() time.Duration {
		start := time.Now()
		db := "byhand_" + strconv.FormatInt(time.Now().UnixNano(), 36)
		url := drilltest.DatabaseURL(b, db)
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
		took, rto, _ := benchRun(b, env)
		return took, rto
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

// benchScale is the pgbench scale of the drill benchmarks:
// DRILL_BENCH_SCALE, default 50 (5M rows).
func benchScale() int {
	if n, err := strconv.Atoi(os.Getenv("DRILL_BENCH_SCALE")); err == nil && n > 0 {
		return n
	}
	return 50
}

// pgbenchDump makes a pgbench database of scale and dumps it with
// pg_dump's format args into a new backups directory.
func pgbenchDump(b *testing.B, scale int, format ...string) (dir, dump string) {
	bin := drilltest.Binaries(b)
	src := drilltest.NewDatabase(b)
	if out, err := exec.Command(bin.Path("pgbench"), "-i", "-q", "-s", strconv.Itoa(scale), src).CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	dir = drilltest.BackupDir(b)
	dump = filepath.Join(dir, "pgbench.dump")
	drilltest.Dump(b, src, append(format, "-f", dump)...)
	return dir, dump
}

// benchDrill configures a drill "pgbench" of source (a YAML flow mapping)
// into a local target, checking the row count of a pgbench of scale, and
// returns the environment of drill commands that run it.
func benchDrill(b *testing.B, source string, scale int) []string {
	config := filepath.Join(b.TempDir(), "drill.yaml")
	yaml := fmt.Sprintf(`drills:
  - name: pgbench
    source: %s
    target: { type: local, dir: %s }
    checks:
      - type: row_count
        table: public.pgbench_accounts
        equals: %d
`, source, drilltest.SharedDir(b), scale*100000)
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		b.Fatal(err)
	}
	env := []string{"DRILL_DATABASE_URL=" + drilltest.NewDatabase(b), "DRILL_CONFIG=" + config}
	if r := drill(b, env, "migrate"); r.code != 0 {
		b.Fatalf("migrate: %s", r.stderr)
	}
	return env
}

// benchRun runs the drill: its wall time, recorded RTO in seconds and the
// drill process's own peak resident memory in bytes (VmHWM, read while it
// runs: its children — the server, pg_restore — are not counted).
func benchRun(b *testing.B, env []string) (time.Duration, float64, int64) {
	cmd := exec.Command(drillBin, "run", "pgbench", "--json")
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	var peak int64
	go func() {
		defer close(stopped)
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		for {
			if hwm := vmHWM(status); hwm > 0 {
				peak = hwm
			}
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	err := cmd.Wait()
	took := time.Since(start)
	close(done)
	<-stopped
	var run struct {
		Status     string  `json:"status"`
		RTOSeconds float64 `json:"rto_seconds"`
	}
	if jerr := json.Unmarshal(stdout.Bytes(), &run); err != nil || jerr != nil || run.Status != "passed" {
		b.Fatalf("drill run: %v %s\n%s", err, stdout.String(), stderr.String())
	}
	return took, run.RTOSeconds, peak
}

// vmHWM reads a process's peak resident set size, in bytes, from its
// /proc status file (0 when it is gone).
func vmHWM(status string) int64 {
	data, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// BenchmarkDrillFromS3 measures `drill run` of a drill whose backup is in
// S3 (the S3 test server over loopback, through the AWS SDK) against the
// same drill of the same file on local disk, alternating: x-local is the
// S3 drill's time over the local one's (goal ≤ 1.1). The dump is pgbench
// scale DRILL_BENCH_SCALE (default 50), once with pg_dump's default
// compression and once without (about 500 MB, where fetching weighs most
// against a restore that stays the same). The drill process's own peak
// RSS is reported (goal < 100 MB).
func BenchmarkDrillFromS3(b *testing.B) {
	for _, variant := range []struct{ name, compress string }{{"compressed", "-Z6"}, {"uncompressed", "-Z0"}} {
		b.Run(variant.name, func(b *testing.B) { benchDrillFromS3(b, variant.compress) })
	}
}

func benchDrillFromS3(b *testing.B, compress string) {
	scale := benchScale()
	backups, dump := pgbenchDump(b, scale, "-Fc", compress)
	s := drilltest.NewS3(b)
	s.Bucket(b, "backups")
	body, err := os.ReadFile(dump)
	if err != nil {
		b.Fatal(err)
	}
	s.Put(b, "backups", "pgbench/pgbench.dump", body)
	size := len(body)
	body = nil
	fromS3 := benchDrill(b, "{ type: pgdump, location: \"s3://backups/pgbench/\" }", scale)
	fromFile := benchDrill(b, fmt.Sprintf("{ type: pgdump, location: %s }", backups), scale)
	benchRun(b, fromFile) // the template cluster is made once per binaries, not per drill
	var s3Time, fileTime time.Duration
	var s3RSS, fileRSS int64
	i := 0
	for b.Loop() {
		s3 := func() {
			took, _, rss := benchRun(b, fromS3)
			s3Time, s3RSS = s3Time+took, max(s3RSS, rss)
		}
		file := func() {
			took, _, rss := benchRun(b, fromFile)
			fileTime, fileRSS = fileTime+took, max(fileRSS, rss)
		}
		if i%2 == 0 {
			s3()
			file()
		} else {
			file()
			s3()
		}
		i++
	}
	b.ReportMetric(float64(size)/(1<<20), "dump-MB")
	b.ReportMetric(s3Time.Seconds()/float64(i), "s3-s/op")
	b.ReportMetric(fileTime.Seconds()/float64(i), "file-s/op")
	b.ReportMetric(s3Time.Seconds()/fileTime.Seconds(), "x-local")
	b.ReportMetric(float64(s3RSS)/(1<<20), "s3-peak-rss-MB")
	b.ReportMetric(float64(fileRSS)/(1<<20), "file-peak-rss-MB")
}
