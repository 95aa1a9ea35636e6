package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drill/drills/drilltest"
)

// physicalDrill writes a config with one drill of a physical source and
// returns the environment to run it with.
func physicalDrill(t *testing.T, name, source, checks string) ([]string, string) {
	t.Helper()
	targetDir := drilltest.SharedDir(t)
	config := filepath.Join(t.TempDir(), "drill.yaml")
	yaml := fmt.Sprintf(`drills:
  - name: %s
    timeout: 5m
    source:
%s
    target:
      type: local
      dir: %s            # run as drill-sandbox, which reads the repository through its group
    checks:
%s
`, name, source, targetDir, checks)
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"DRILL_DATABASE_URL=" + drilltest.NewDatabase(t), "DRILL_CONFIG=" + config}, targetDir
}

func runPhysical(t *testing.T, env []string, name string) (int, map[string]any, result) {
	t.Helper()
	r := drill(t, env, "run", name, "--json")
	var run map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &run); err != nil {
		t.Fatalf("exit %d, stdout is not JSON: %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
	}
	return r.code, run, r
}

func countCheck(n int) string {
	return fmt.Sprintf(`      - type: sql
        name: rows
        query: select count(*) from t
        expect: "%d"
      - type: amcheck`, n)
}

// The done-when of pgBackRest drills: a full backup, rows written after it,
// a target time between two batches; a drill to the target time restores
// exactly the rows before it and measures RPO from the recovery point, a
// drill to latest restores them all, the repository is unchanged, and
// nothing is left. Then the bad cases, each a clear error.
func TestPgBackRestPointInTime(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("pgbackrest"); err != nil {
		t.Fatal("pgbackrest is not installed: make test installs it (apt-get install pgbackrest)")
	}
	src := drilltest.PgBackRestSource(t)
	src.Insert(t, 1, 100)
	src.Backrest(t, "--type=full", "backup")
	lastBefore := src.Insert(t, 101, 150)
	src.SwitchWAL(t) // a segment of its own: the missing-segment case removes it
	time.Sleep(1500 * time.Millisecond)
	target := lastBefore.Add(700 * time.Millisecond).UTC().Truncate(time.Millisecond)
	src.Insert(t, 151, 170)
	src.SwitchWAL(t)
	repoBefore := drilltest.Checksum(t, src.Repo)

	source := func(targetTime string) string {
		return fmt.Sprintf("      type: pgbackrest\n      stanza: main\n      config: %s\n      target_time: %q", src.Config, targetTime)
	}
	t.Run("target time", func(t *testing.T) {
		env, dir := physicalDrill(t, "orders", source(target.Format(time.RFC3339Nano)), countCheck(150))
		code, run, r := runPhysical(t, env, "orders")
		if code != 0 || run["status"] != "passed" {
			t.Fatalf("exit %d status %v error %v\n%s", code, run["status"], run["error"], r.stderr)
		}
		b := run["backup"].(map[string]any)
		recovered, err := time.Parse(time.RFC3339Nano, fmt.Sprint(b["recovered_to"]))
		if err != nil {
			t.Fatalf("backup.recovered_to %v: %v", b["recovered_to"], err)
		}
		if recovered.Before(lastBefore.Add(-time.Second)) || recovered.After(target) {
			t.Errorf("recovered_to %s, want the commit of the last row before the target (%s … %s)", recovered, lastBefore, target)
		}
		started, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(run["started_at"]))
		if rpo := run["rpo_seconds"].(float64); rpo < started.Sub(recovered).Seconds()-1 || rpo > started.Sub(recovered).Seconds()+1 {
			t.Errorf("rpo_seconds %v, want started_at − recovered_to = %v", rpo, started.Sub(recovered).Seconds())
		}
		d := b["details"].(map[string]any)
		if b["format"] != "physical" || d["label"] == nil || d["stop_lsn"] == nil || d["pg_version"] != "15" || b["created_at_source"] != "pgBackRest backup stop time" ||
			d["target_time"] != target.Format(time.RFC3339Nano) {
			t.Errorf("backup record %v", b)
		}
		if sel := b["selection"].(map[string]any); !strings.Contains(fmt.Sprint(sel["rule"]), "before target_time") {
			t.Errorf("selection %v", sel)
		}
		if show := drill(t, env, "show", fmt.Sprint(run["id"])); !strings.Contains(show.stdout, "from the recovery point "+recovered.UTC().Format(time.RFC3339)) {
			t.Errorf("drill show does not say where the RPO runs from:\n%s", show.stdout)
		}
		drilltest.AssertNothingLeft(t, dir)
	})
	t.Run("latest", func(t *testing.T) {
		env, dir := physicalDrill(t, "orders", source("latest"), countCheck(170))
		code, run, r := runPhysical(t, env, "orders")
		if code != 0 {
			t.Fatalf("exit %d error %v\n%s", code, run["error"], r.stderr)
		}
		drilltest.AssertNothingLeft(t, dir)
	})
	if after := drilltest.Checksum(t, src.Repo); after != repoBefore {
		t.Error("the drills changed the pgBackRest repository")
	}

	t.Run("bad input", func(t *testing.T) {
		cases := []struct {
			name, source, reason, want string
		}{
			{"wrong stanza", strings.Replace(source("latest"), "stanza: main", "stanza: nosuch", 1), "locate_failed", "stanza nosuch"},
			{"early target", source("2001-01-01T00:00:00Z"), "no_backup", "no backup in stanza main finished before target_time 2001-01-01T00:00:00Z"},
			{"late target", source(time.Now().Add(time.Hour).UTC().Format(time.RFC3339)), "restore_failed", "failed: FATAL: recovery ended before configured recovery target was reached (the server's log is the run's restore log)"},
			{"unknown set", source("latest") + "\n      set: 20010101-000000F", "no_backup", "no usable backup labelled 20010101-000000F"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				env, dir := physicalDrill(t, "orders", c.source, countCheck(170))
				failsWith(t, env, dir, c.reason, c.want)
			})
		}
	})

	// A copy of the repository with one WAL segment between the backup and
	// the end removed: the drill must fail, not pass with fewer rows.
	t.Run("missing WAL", func(t *testing.T) {
		cp := copyRepo(t, src)
		segs, _ := filepath.Glob(filepath.Join(cp.repo, "archive", "main", "15-1", "*", "*"))
		var wal []string
		for _, s := range segs {
			if base := filepath.Base(s); len(base) > 24 && !strings.Contains(base, ".backup") {
				wal = append(wal, s)
			}
		}
		if len(wal) < 4 {
			t.Fatalf("want at least 4 archived segments, have %v", wal)
		}
		if err := os.Remove(wal[len(wal)-2]); err != nil { // rows 101–150: after the backup's own segment, before the last
			t.Fatal(err)
		}
		for _, tt := range []struct{ targetTime, want string }{
			{"latest", "recovery stopped before the end of the archived WAL"},
			{target.Format(time.RFC3339Nano), "recovery ended before configured recovery target was reached"},
		} {
			env, dir := physicalDrill(t, "orders", strings.Replace(source(tt.targetTime), src.Config, cp.config, 1), countCheck(170))
			code, run, r := runPhysical(t, env, "orders")
			if code != 1 || run["reason"] != "restore_failed" || !strings.Contains(fmt.Sprint(run["error"]), tt.want) {
				t.Fatalf("%s: exit %d reason %v error %v\n%s", tt.targetTime, code, run["reason"], run["error"], r.stderr)
			}
			drilltest.AssertNothingLeft(t, dir)
		}
	})
	t.Run("corrupt file", func(t *testing.T) {
		cp := copyRepo(t, src)
		files, _ := filepath.Glob(filepath.Join(cp.repo, "backup", "main", "*F", "pg_data", "base", "*", "*"))
		var biggest string
		var size int64
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil && fi.Size() > size {
				biggest, size = f, fi.Size()
			}
		}
		data, err := os.ReadFile(biggest)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 0xff
		if err := os.WriteFile(biggest, data, 0o640); err != nil {
			t.Fatal(err)
		}
		env, dir := physicalDrill(t, "orders", strings.Replace(source("latest"), src.Config, cp.config, 1), countCheck(170))
		code, run, r := runPhysical(t, env, "orders")
		t.Logf("corrupt file: %v", run["error"])
		if code != 1 || run["reason"] != "restore_failed" || !strings.Contains(fmt.Sprint(run["error"]), "pgbackrest") {
			t.Fatalf("exit %d reason %v error %v\n%s", code, run["reason"], run["error"], r.stderr)
		}
		drilltest.AssertNothingLeft(t, dir)
	})
}

type repoCopy struct{ repo, config string }

// copyRepo copies the source's repository (owned by postgres, as the
// original) and writes a config that points at the copy.
func copyRepo(t *testing.T, src *drilltest.PhysicalSource) repoCopy {
	t.Helper()
	dir, err := os.MkdirTemp("", "drill-repo-copy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(dir, "repo")
	if out, err := exec.Command("cp", "-a", src.Repo, repo).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	conf, err := os.ReadFile(src.Config)
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "pgbackrest.conf")
	if err := os.WriteFile(config, []byte(strings.Replace(string(conf), src.Repo, repo, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return repoCopy{repo: repo, config: config}
}

// A stanza with no backup yet fails with no_backup.
func TestPgBackRestEmptyStanza(t *testing.T) {
	t.Parallel()
	src := drilltest.PgBackRestSource(t)
	env, dir := physicalDrill(t, "orders", fmt.Sprintf("      type: pgbackrest\n      stanza: main\n      config: %s", src.Config), countCheck(0))
	failsWith(t, env, dir, "no_backup", "stanza main has no backup")
}

// A backup of a PostgreSQL major version this host has no binaries of
// cannot be restored here: exit 3, naming the version to install. This
// host has one version only, so pgbackrest info is a script here that
// lists a backup of version 99: the one error path no real repository
// on this host can produce.
func TestPhysicalBackupOfAnotherMajorVersion(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	info := `[{"name":"main","status":{"code":0,"message":"ok"},"db":[{"id":1,"version":"99"}],
"archive":[{"database":{"id":1},"max":"000000010000000000000009"}],
"backup":[{"label":"20261101-030000F","type":"full","error":false,"timestamp":{"start":1793500000,"stop":1793500100},
"lsn":{"start":"0/2000028","stop":"0/2000100"},"archive":{"start":"000000010000000000000002","stop":"000000010000000000000002"},
"info":{"size":1000,"repository":{"size":100}},"database":{"id":1}}]}]`
	script := "#!/bin/sh\ncat <<'EOF'\n" + info + "\nEOF\n"
	if err := os.WriteFile(filepath.Join(bin, "pgbackrest"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	env, dir := physicalDrill(t, "orders", "      type: pgbackrest\n      stanza: main", countCheck(0))
	env = append(env, "PATH="+bin+":"+os.Getenv("PATH"))
	r := drill(t, env, "run", "orders")
	if r.code != 3 || !strings.Contains(r.stderr, "taken by PostgreSQL 99") || !strings.Contains(r.stderr, "apt-get install postgresql-99") {
		t.Fatalf("exit %d, want 3 naming PostgreSQL 99\n%s%s", r.code, r.stdout, r.stderr)
	}
	drilltest.AssertNothingLeft(t, dir)
}

// The done-when of barman-cloud drills, against an S3 server over HTTP:
// a drill to the target time restores exactly the rows before it, latest
// restores them all, RPO runs from the recovery point, the bucket is
// unchanged, nothing is left; a wrong server name and a missing WAL
// segment fail the drill.
func TestBarmanCloudPointInTime(t *testing.T) { // not parallel: the S3 server is in the environment
	needBarman(t)
	s3 := drilltest.NewS3(t)
	s3.Bucket(t, "backups")
	src := drilltest.NewBarmanSource(t, s3, "backups")
	src.Insert(t, 1, 100)
	src.Backup(t)
	lastBefore := src.Insert(t, 101, 150)
	seg := src.SwitchWAL(t)
	time.Sleep(1500 * time.Millisecond)
	target := lastBefore.Add(700 * time.Millisecond).UTC().Truncate(time.Millisecond)
	src.Insert(t, 151, 170)
	src.SwitchWAL(t)
	bucketBefore := s3.Digest(t, "backups")

	source := func(server, targetTime string) string {
		return fmt.Sprintf("      type: barman-cloud\n      location: %s\n      server: %s\n      target_time: %q", src.Location, server, targetTime)
	}
	env, dir := physicalDrill(t, "orders", source("orders", target.Format(time.RFC3339Nano)), countCheck(150))
	code, run, r := runPhysical(t, env, "orders")
	if code != 0 {
		t.Fatalf("target time: exit %d error %v\n%s", code, run["error"], r.stderr)
	}
	b := run["backup"].(map[string]any)
	recovered, err := time.Parse(time.RFC3339, fmt.Sprint(b["recovered_to"]))
	if err != nil || recovered.Before(lastBefore.Add(-time.Second)) || recovered.After(target) {
		t.Errorf("recovered_to %v (%v), want between %s and %s", b["recovered_to"], err, lastBefore, target)
	}
	if b["created_at_source"] != "barman-cloud backup stop time" || b["details"].(map[string]any)["stop_lsn"] == nil {
		t.Errorf("backup record %v", b)
	}
	drilltest.AssertNothingLeft(t, dir)

	env, dir = physicalDrill(t, "orders", source("orders", "latest"), countCheck(170))
	if code, run, r := runPhysical(t, env, "orders"); code != 0 {
		t.Fatalf("latest: exit %d error %v\n%s", code, run["error"], r.stderr)
	}
	drilltest.AssertNothingLeft(t, dir)
	if after := s3.Digest(t, "backups"); after != bucketBefore {
		t.Errorf("the drills changed the bucket: %s, was %s", after, bucketBefore)
	}

	env, dir = physicalDrill(t, "orders", source("nosuch", "latest"), countCheck(170))
	if code, run, r := runPhysical(t, env, "orders"); code != 1 || run["reason"] != "no_backup" || !strings.Contains(fmt.Sprint(run["error"]), "server nosuch has no backup") {
		t.Fatalf("wrong server: exit %d reason %v error %v\n%s", code, run["reason"], run["error"], r.stderr)
	}
	drilltest.AssertNothingLeft(t, dir)

	// The segment of rows 101–150 removed from the bucket.
	s3.Delete(t, "backups", "barman/orders/wals/"+seg[:16]+"/"+seg)
	env, dir = physicalDrill(t, "orders", source("orders", "latest"), countCheck(170))
	if code, run, r := runPhysical(t, env, "orders"); code != 1 || run["reason"] != "restore_failed" || !strings.Contains(fmt.Sprint(run["error"]), "recovery stopped before the end of the archived WAL") {
		t.Fatalf("missing segment: exit %d reason %v error %v\n%s", code, run["reason"], run["error"], r.stderr)
	}
	drilltest.AssertNothingLeft(t, dir)
}

// drill validate says when a physical source's tool is not installed on
// this host, and when a backup directory does not exist (yet) (the config
// itself is fine: exit 0).
func TestValidateSaysToolMissing(t *testing.T) {
	t.Parallel()
	config := filepath.Join(t.TempDir(), "drill.yaml")
	yaml := `drills:
  - name: orders
    source: { type: pgbackrest, stanza: main, target_time: latest }
  - name: billing
    source: { type: barman-cloud, location: s3://backups/barman, server: billing }
  - name: shop
    source: { type: pgdump, location: /nonexistent/backups/shop/ }
`
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	r := drill(t, []string{"PATH=" + t.TempDir()}, "validate", "--config", config)
	if r.code != 0 || !strings.Contains(r.stdout, "warning: pgbackrest is not installed on this host (Debian/Ubuntu: apt-get install pgbackrest)") ||
		!strings.Contains(r.stdout, "warning: location /nonexistent/backups/shop/ does not exist (yet)") ||
		!strings.Contains(r.stdout, "warning: barman-cloud-restore is not installed on this host (Debian/Ubuntu: apt-get install barman-cli-cloud)") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Bad settings: each a problem with its line.
	yaml = `drills:
  - name: orders
    source:
      type: pgbackrest
      target_time: yesterday
  - name: billing
    source:
      type: barman-cloud
      location: /var/backups
      server: billing
`
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	r = drill(t, nil, "validate", "--config", config)
	for _, want := range []string{"drill.yaml:3:", "missing required field stanza", "drill.yaml:5:", `target_time "yesterday" is neither latest nor an RFC 3339 time`, "drill.yaml:9:", "s3://bucket/prefix"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("validate lacks %q\n%s", want, r.stderr)
		}
	}
	if r.code != 2 {
		t.Errorf("exit %d, want 2", r.code)
	}
}

// A physical backup is untrusted: its catalogs may hold per-role and
// per-database settings that put its own functions first on the
// search_path (shadowing pg_last_xact_replay_timestamp, say), an event
// trigger that fires on drill's DDL, and a SECURITY DEFINER function of a
// superuser behind a view a check reads. None of it may run as drill's
// superuser or reach the host; the RPO comes from the real recovery
// point, and the check that reads the view fails rather than the host.
func TestPhysicalBackupCannotRunCode(t *testing.T) {
	t.Parallel()
	out := worldWritable(t)
	src := drilltest.PgBackRestSource(t)
	src.Insert(t, 1, 100)
	prog := func(name string) string { return "copy (select 1) to program ''id > " + out + "/" + name + ".txt''" }
	src.Exec(t,
		"create schema evil",
		"create function evil.pg_last_xact_replay_timestamp() returns timestamptz language sql as $$ select now() + interval '30 days' $$",
		"create function evil.pg_is_in_recovery() returns bool language plpgsql as $$ begin execute '"+prog("shadowed")+"'; return false; end $$",
		"create function evil.pwn() returns event_trigger language plpgsql as $$ begin execute '"+prog("event_trigger")+"'; end $$",
		"create function public.leak() returns bigint language plpgsql security definer as $$ begin execute '"+prog("security_definer")+"'; return 1; end $$",
		"create view public.looks_innocent as select public.leak() as n",
		"create event trigger pwn on ddl_command_start execute function evil.pwn()", // last: it fires on the source too
		"alter database template1 set search_path = evil, pg_catalog",
		"alter database postgres set search_path = evil, pg_catalog",
		"alter role postgres set search_path = evil, pg_catalog",
	)
	src.Backrest(t, "--type=full", "backup")
	src.SwitchWAL(t)
	if entries, _ := os.ReadDir(out); len(entries) > 0 {
		t.Fatalf("the source ran the attack itself: %v", entries)
	}

	checks := countCheck(100) + `
      - type: sql
        name: through-the-view
        query: select n from public.looks_innocent
        expect: "1"`
	env, dir := physicalDrill(t, "orders", fmt.Sprintf("      type: pgbackrest\n      stanza: main\n      config: %s", src.Config), checks)
	code, run, r := runPhysical(t, env, "orders")
	if entries, _ := os.ReadDir(out); len(entries) > 0 {
		t.Fatalf("the backup ran code on the host: %v\n%s", entries, r.stderr)
	}
	if code != 1 || run["reason"] != "check_failed" {
		t.Fatalf("exit %d reason %v error %v, want only the view's check to fail\n%s", code, run["reason"], run["error"], r.stderr)
	}
	for _, c := range run["checks"].([]any) {
		c := c.(map[string]any)
		wantPass := c["name"] != "through-the-view"
		if c["passed"] != wantPass {
			t.Errorf("check %v passed %v: %v %v", c["name"], c["passed"], c["actual"], c["error"])
		}
		if !wantPass && !strings.Contains(fmt.Sprint(c["error"]), "permission denied for function leak") {
			t.Errorf("the view's check failed with %v, want permission denied", c["error"])
		}
	}
	if rpo, _ := run["rpo_seconds"].(float64); rpo <= 0 {
		t.Errorf("rpo_seconds %v: the recovery point came from the backup's function", run["rpo_seconds"])
	}
	drilltest.AssertNothingLeft(t, dir)
}

// A physical backup holding a symbolic link out of its data directory is
// refused before the server starts.
func TestPhysicalBackupWithLinkRefused(t *testing.T) {
	needBarman(t)
	s3 := drilltest.NewS3(t)
	s3.Bucket(t, "backups")
	src := drilltest.NewBarmanSource(t, s3, "backups")
	src.Insert(t, 1, 10)
	link := filepath.Join(src.Cluster.DataDir(), "escape")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	src.Backup(t)
	src.SwitchWAL(t)
	env, dir := physicalDrill(t, "orders", fmt.Sprintf("      type: barman-cloud\n      location: %s\n      server: %s", src.Location, src.Server), countCheck(10))
	failsWith(t, env, dir, "restore_failed", "escape is a symbolic link")
}

// needBarman fails the test when barman-cloud is not installed (make test
// installs it).
func needBarman(t *testing.T) {
	t.Helper()
	for _, p := range []string{"barman-cloud-backup", "barman-cloud-restore"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s is not installed: make test installs it (apt-get install barman-cli-cloud)", p)
		}
	}
}

// A C function of the backup's that loads a library from outside
// PostgreSQL's library directory (the backup's own file, say) fails the
// drill before any check could load it.
func TestPhysicalBackupWithForeignLibraryRefused(t *testing.T) {
	t.Parallel()
	src := drilltest.PgBackRestSource(t)
	src.Insert(t, 1, 10)
	// A library that exists (PostgreSQL checks that), named by a path of
	// its own rather than $libdir's: the backup could name any file.
	lib := filepath.Join(filepath.Dir(drilltest.Binaries(t).Dir), "lib", "plpgsql")
	src.Exec(t, "set check_function_bodies = off; create function public.evil() returns int language c as '"+lib+"', 'plpgsql_call_handler'")
	src.Backrest(t, "--type=full", "backup")
	src.SwitchWAL(t)
	env, dir := physicalDrill(t, "orders", fmt.Sprintf("      type: pgbackrest\n      stanza: main\n      config: %s", src.Config), countCheck(10))
	failsWith(t, env, dir, "restore_failed", `physical backup refused: it could reach outside its throwaway cluster: function public.evil() of database postgres loads "`+lib+`"`)
}

// failsWith runs the drill orders and asserts it fails (exit 1) for
// reason with an error holding want, leaving nothing in dir.
func failsWith(t *testing.T, env []string, dir, reason, want string) {
	t.Helper()
	code, run, r := runPhysical(t, env, "orders")
	if code != 1 || run["reason"] != reason || !strings.Contains(fmt.Sprint(run["error"]), want) {
		t.Fatalf("exit %d reason %v error %v, want 1 %s %q\n%s", code, run["reason"], run["error"], reason, want, r.stderr)
	}
	drilltest.AssertNothingLeft(t, dir)
}
