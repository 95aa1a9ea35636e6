package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"drill/drills/drilltest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// proofConfig writes a config whose drill checks the fingerprint, amcheck
// and drift of the backups at location.
func proofConfig(t *testing.T, location string) []string {
	t.Helper()
	config := filepath.Join(t.TempDir(), "drill.yaml")
	yaml := fmt.Sprintf(`drills:
  - name: proof
    source:
      type: pgdump
      location: %s
    target:
      type: local
      dir: %s
    checks:
      - type: fingerprint
      - type: amcheck
      - type: drift
        max_shrink: 10%%
`, location, drilltest.SharedDir(t))
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"DRILL_DATABASE_URL=" + drilltest.NewDatabase(t), "DRILL_CONFIG=" + config}
}

type fingerprintFile struct {
	SnapshotTakenAt time.Time `json:"snapshot_taken_at"`
	Dump            struct {
		Format, SHA256 string
		SizeBytes      int64 `json:"size_bytes"`
	} `json:"dump"`
	Tables []struct {
		Name     string
		Rows     int64
		Checksum string
	} `json:"tables"`
}

// The done-when of the fingerprint: a database of exotic column types
// dumped by drill dump under Asia/Kolkata, restored and checked under UTC,
// matches its fingerprint table by table.
func TestDumpFingerprintAcrossTimeZones(t *testing.T) {
	t.Parallel()
	src := drilltest.Exotic(t)
	backups := drilltest.BackupDir(t)
	out := filepath.Join(backups, "exotic.dump")
	r := drill(t, []string{"PGTZ=Asia/Kolkata", "TZ=Asia/Kolkata", "PGDATESTYLE=German"}, "dump", src, "--out", out, "--jobs", "3", "--json")
	if r.code != 0 {
		t.Fatalf("dump exit %d: %s", r.code, r.stderr)
	}
	var sum struct {
		Out, Fingerprint, SHA256 string
		Tables                   int
	}
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || sum.Tables != 6 || len(sum.SHA256) != 64 {
		t.Fatalf("dump --json: %v %s", err, r.stdout)
	}
	var fp fingerprintFile
	data, err := os.ReadFile(out + ".fingerprint.json")
	if err != nil || json.Unmarshal(data, &fp) != nil {
		t.Fatalf("fingerprint: %v %s", err, data)
	}
	if fp.Dump.SHA256 != sum.SHA256 || fp.Dump.Format != "custom" || len(fp.Tables) != 6 || fp.SnapshotTakenAt.IsZero() {
		t.Fatalf("fingerprint file: %+v", fp)
	}

	env := append(proofConfig(t, backups), "PGTZ=UTC", "TZ=UTC")
	run := drill(t, env, "run", "proof", "--json")
	if run.code != 0 {
		t.Fatalf("run exit %d: %s\n%s", run.code, run.stdout, run.stderr)
	}
	var rec struct {
		Backup struct {
			SHA256          string `json:"sha256"`
			CreatedAt       string `json:"created_at"`
			CreatedAtSource string `json:"created_at_source"`
		}
		Checks []struct {
			Name, Actual string
			Details      []struct{ Name, Status string }
		}
		Tables []struct {
			Name string
			Rows int64
		}
	}
	if err := json.Unmarshal([]byte(run.stdout), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Backup.SHA256 != sum.SHA256 || rec.Backup.CreatedAtSource != "fingerprint" ||
		rec.Backup.CreatedAt != fp.SnapshotTakenAt.UTC().Format(time.RFC3339) {
		t.Errorf("backup: %+v (fingerprint %s)", rec.Backup, fp.SnapshotTakenAt)
	}
	if got := rec.Checks[0]; !strings.HasPrefix(got.Actual, "6 tables, ") || len(got.Details) != 6 {
		t.Errorf("fingerprint check: %+v", got)
	}
	if len(rec.Tables) != 6 {
		t.Errorf("inventory: %+v", rec.Tables)
	}
}

// drill dump to S3 streams a multipart upload: the object and its
// fingerprint appear whole, and a drill restores and checks them; a dump
// that fails leaves no object and no upload behind.
func TestDumpToS3(t *testing.T) {
	s := drilltest.NewS3(t)
	s.Bucket(t, "backups")
	shop := drilltest.Shop(t)
	r := drill(t, []string{"SHOP_URL=" + shop}, "dump", "env:SHOP_URL", "--out", "s3://backups/shop/2026-11-29.dump")
	if r.code != 0 {
		t.Fatalf("dump exit %d: %s", r.code, r.stderr)
	}
	env := proofConfig(t, "s3://backups/shop/")
	if run := drill(t, env, "run", "proof"); run.code != 0 {
		t.Fatalf("run exit %d: %s\n%s", run.code, run.stdout, run.stderr)
	}

	bad := drill(t, nil, "dump", shop, "--out", "s3://backups/shop/bad.dump", "--", "--table=no_such_table")
	if bad.code != 3 || !strings.Contains(bad.stderr, "no matching tables") {
		t.Fatalf("failed dump: exit %d: %s", bad.code, bad.stderr)
	}
	ctx := context.Background()
	list, err := s.Client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("backups")})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range list.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	if strings.Join(keys, " ") != "shop/2026-11-29.dump shop/2026-11-29.dump.fingerprint.json" {
		t.Errorf("objects after a failed dump: %v", keys)
	}
	uploads, err := s.Client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("backups")})
	if err != nil {
		t.Fatal(err)
	}
	if len(uploads.Uploads) != 0 {
		t.Errorf("%d multipart uploads left open", len(uploads.Uploads))
	}
}

// An interrupted dump leaves nothing under the backup's name, nor a
// temporary file beside it; bad arguments exit 2, a refused connection 3.
func TestDumpInterruptedAndBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := drilltest.NewDatabase(t)
	drilltest.Exec(t, big, "create table big as select g as id, md5(g::text) as v from generate_series(1, 3000000) g")
	cmd := exec.Command(drillBin, "dump", big, "--out", filepath.Join(dir, "big.dump"), "--format", "plain")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	drilltest.WaitFor(t, 30*time.Second, "a temporary dump file", func() bool {
		entries, _ := os.ReadDir(dir)
		return len(entries) > 0
	})
	_ = cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("interrupted dump: exit %d (%v)", code, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"dump", big}, 2, "--out is required"},
		{[]string{"dump", big, "--out", filepath.Join(dir, "x"), "--format", "zip"}, 2, `--format "zip"`},
		{[]string{"dump", big, "--out", "s3://b/k", "--format", "directory"}, 2, "cannot go to S3"},
		{[]string{"dump", big, "--out", filepath.Join(dir, "x.dump"), "--", "--file=/etc/x"}, 2, "set by drill dump"},
		{[]string{"dump", big, "--out", filepath.Join(dir, "x.fingerprint.json")}, 2, "reserved"},
		{[]string{"dump", big, "--out", filepath.Join(dir, "no", "x.dump")}, 2, "does not exist"},
		{[]string{"dump", "env:DRILL_TEST_NO_SUCH_VAR", "--out", filepath.Join(dir, "x.dump")}, 2, "is not set"},
		{[]string{"dump", big, "--out", filepath.Join(dir, "x.dump"), "--", "-vf/tmp/elsewhere.dump"}, 2, "set by drill dump"},
		{[]string{"dump", "postgres://nobody@127.0.0.1:1/x", "--out", filepath.Join(dir, "x.dump")}, 3, "connection refused"},
	} {
		r := drill(t, nil, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("bad input left behind: %v", entries)
	}
}

// A dump killed outright (SIGKILL: no chance to clean up) leaves its
// temporary file; the next dump to the same path removes it, and says so,
// but leaves alone the temporary file of a dump to that path still running.
func TestDumpRemovesWhatAKilledDumpLeft(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "big.dump")
	big := drilltest.NewDatabase(t)
	drilltest.Exec(t, big, "create table big as select g as id, md5(g::text) as v from generate_series(1, 3000000) g")
	temps := func() map[string]bool {
		m := map[string]bool{}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".drill-tmp-") && !strings.HasSuffix(e.Name(), ".lock") {
				m[e.Name()] = true
			}
		}
		return m
	}
	start := func() (*exec.Cmd, string) {
		before := temps()
		cmd := exec.Command(drillBin, "dump", big, "--out", out, "--format", "plain")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var name string
		drilltest.WaitFor(t, 30*time.Second, "a temporary dump file", func() bool {
			for n := range temps() {
				if !before[n] {
					name = n
				}
			}
			return name != ""
		})
		return cmd, name
	}
	killed, killedTemp := start()
	_ = killed.Process.Kill()
	_ = killed.Wait()
	running, runningTemp := start()
	defer func() { _ = running.Process.Kill(); _ = running.Wait() }()
	old := time.Now().Add(-2 * time.Minute)
	for _, name := range []string{killedTemp, killedTemp + ".lock", runningTemp + ".lock"} {
		if err := os.Chtimes(filepath.Join(dir, name), old, old); err != nil {
			t.Fatal(err)
		}
	}

	small := drilltest.NewDatabase(t)
	drilltest.Exec(t, small, "create table t as select 1 as id")
	r := drill(t, nil, "dump", small, "--out", out, "--json")
	if r.code != 0 || !strings.Contains(r.stderr, "removed "+filepath.Join(dir, killedTemp)+": what an interrupted drill dump") ||
		!strings.Contains(r.stdout, `"removed_partial"`) {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	left := temps()
	if left[killedTemp] || !left[runningTemp] {
		t.Fatalf("temporary files now %v: want %s removed and %s (still being written) kept", left, killedTemp, runningTemp)
	}
	_ = running.Process.Signal(syscall.SIGINT)
	_ = running.Wait()
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "big.dump big.dump.fingerprint.json" {
		t.Fatalf("left in the directory: %v", names)
	}
}
