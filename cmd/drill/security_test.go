package main_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"drill/drills/drilltest"

	"github.com/jackc/pgx/v5"
)

// worldWritable returns a directory any OS user may write to: a file an
// attack makes there proves the attack ran, whoever it ran as.
func worldWritable(t *testing.T) string {
	t.Helper()
	dir := drilltest.SharedDir(t)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runJSON runs `drill run shop --json` and returns the exit code and the run.
func runJSON(t *testing.T, b bundle) (int, map[string]any, result) {
	t.Helper()
	r := drill(t, b.env, "run", "shop", "--json")
	var run map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &run); err != nil {
		t.Fatalf("exit %d, stdout is not JSON: %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
	}
	return r.code, run, r
}

// A plain-SQL backup is a script: nothing in it may run a command on the
// host, as root or as the cluster's OS user, or write a file there.
func TestPlainBackupCannotReachTheHost(t *testing.T) {
	t.Parallel()
	dump := filepath.Join(t.TempDir(), "shop.sql")
	drilltest.DumpAs(t, drilltest.Shop(t), "plain", dump)
	clean, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	out := worldWritable(t)
	attacks := map[string]string{
		"shell":    `\! id > ` + out + "/shell.txt\n",
		"env":      `\! env > ` + out + "/env.txt\n",
		"midline":  "SELECT 1; \\! id > " + out + "/midline.txt\n",
		"program":  "COPY (select 1) TO PROGRAM 'id > " + out + "/program.txt';\n",
		"copyfile": "COPY (select 1) TO '" + out + "/copy.txt';\n",
		// With standard_conforming_strings off, psql reads the backslash
		// command below outside a string; a scanner that takes the setting
		// to be on reads it inside one. psql's \restrict refuses it anyway.
		"hidden":   "SET standard_conforming_strings = off;\nSELECT 'a\\'';\\! id > " + out + "/hidden.txt\n';\n",
		"readfile": "CREATE TABLE stolen AS SELECT pg_read_file('/etc/passwd') AS f;\n",
		"cfunc":    "CREATE FUNCTION public.sys(cstring) RETURNS int AS '/lib/x86_64-linux-gnu/libc.so.6', 'system' LANGUAGE c;\n",
	}
	at := strings.Index(string(clean), "CREATE TABLE public.customers")
	if at < 0 {
		t.Fatal("no CREATE TABLE in the dump")
	}
	for name, attack := range attacks {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, 1)
			evil := string(clean[:at]) + attack + string(clean[at:])
			if err := os.WriteFile(filepath.Join(b.backups, "shop.sql"), []byte(evil), 0o644); err != nil {
				t.Fatal(err)
			}
			code, run, r := runJSON(t, b)
			if code != 1 || run["reason"] != "restore_failed" {
				t.Errorf("exit %d reason %v, want 1 restore_failed\n%s", code, run["reason"], r.stderr)
			}
			entries, _ := os.ReadDir(out)
			for _, e := range entries {
				t.Errorf("the backup wrote %s", e.Name())
			}
			drilltest.AssertNothingLeft(t, b.targetDir)
		})
	}
}

// The role checks run as reads every row but cannot write server files or
// run programs, and is no superuser.
func TestChecksCannotReachTheHost(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	out := worldWritable(t)
	drilltest.DumpAs(t, drilltest.Shop(t), "custom", filepath.Join(b.backups, "shop.dump"))
	cfg, err := os.ReadFile(b.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, fmt.Sprintf(`      - type: sql
        name: not-superuser
        query: select current_setting('is_superuser')
        expect: "off"
      - type: sql
        name: copy-to-file
        query: copy (select 1) to '%s/check.txt'
        expect: "1"
      - type: sql
        name: copy-to-program
        query: copy (select 1) to program 'id > %s/check-program.txt'
        expect: "1"
`, out, out)...)
	if err := os.WriteFile(b.config, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	code, run, r := runJSON(t, b)
	if code != 1 || run["reason"] != "check_failed" {
		t.Fatalf("exit %d reason %v, want 1 check_failed\n%s", code, run["reason"], r.stderr)
	}
	results := map[string]map[string]any{}
	for _, c := range run["checks"].([]any) {
		c := c.(map[string]any)
		results[c["name"].(string)] = c
	}
	if c := results["not-superuser"]; c["passed"] != true {
		t.Errorf("checks run as a superuser: %v", c)
	}
	if c := results["public.orders row count"]; c != nil && c["passed"] != true {
		t.Errorf("the check role cannot read the data: %v", c)
	}
	for _, name := range []string{"copy-to-file", "copy-to-program"} {
		c := results[name]
		if c["passed"] != false || !strings.Contains(fmt.Sprint(c["error"]), "permission denied") && !strings.Contains(fmt.Sprint(c["error"]), "must be superuser") {
			t.Errorf("%s: %v", name, c)
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) > 0 {
		t.Errorf("a check wrote %s", entries[0].Name())
	}
}

// A plain dump cut short is a failed restore, gzipped or not.
func TestTruncatedPlainBackupFails(t *testing.T) {
	t.Parallel()
	prod := drilltest.NewDatabase(t)
	drilltest.Exec(t, prod, "create table events (id int, payload text)",
		"insert into events select g, md5(g::text) from generate_series(1, 50000) g")
	full := filepath.Join(t.TempDir(), "full.sql")
	drilltest.DumpAs(t, prod, "plain", full)
	lines := strings.SplitAfter(readFile(t, full), "\n")
	cut := strings.Join(lines[:30000], "")
	for _, gz := range []bool{false, true} {
		t.Run(fmt.Sprintf("gzip=%v", gz), func(t *testing.T) {
			t.Parallel()
			b := setup(t, 1)
			name := filepath.Join(b.backups, "events.sql")
			if gz {
				name += ".gz"
			}
			writeMaybeGzip(t, name, cut, gz)
			code, run, r := runJSON(t, b)
			if code != 1 || run["reason"] != "restore_failed" || !strings.Contains(fmt.Sprint(run["error"]), "backup is truncated") {
				t.Fatalf("exit %d reason %v error %v\n%s", code, run["reason"], run["error"], r.stderr)
			}
			drilltest.AssertNothingLeft(t, b.targetDir)
		})
	}
}

// A directory archive missing a table's data file is a failed restore.
func TestArchiveMissingDataFails(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	dir := drilltest.DumpAs(t, drilltest.Shop(t), "directory", filepath.Join(b.backups, "shop.dir"))
	files, _ := filepath.Glob(filepath.Join(dir, "*.dat.gz"))
	if len(files) == 0 {
		t.Fatal("no data files in the archive")
	}
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	code, run, r := runJSON(t, b)
	if code != 1 || run["reason"] != "restore_failed" {
		t.Fatalf("exit %d reason %v\n%s", code, run["reason"], r.stderr)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

// A named pipe is no backup: validate says what it is, and no command
// waits on it.
func TestFIFOLocation(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	fifo := filepath.Join(b.backups, "shop.dump")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// the directory holds only the pipe: no backup, at once
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, drillBin, "run", "shop", "--json")
	cmd.Env = append(os.Environ(), b.env...)
	outb, _ := cmd.Output()
	if ctx.Err() != nil {
		t.Fatal("drill run waited on a named pipe")
	}
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(outb), `"reason": "no_backup"`) {
		t.Fatalf("exit %d\n%s", cmd.ProcessState.ExitCode(), outb)
	}
	// the pipe itself as location: a config error, said where
	cfg := strings.Replace(readFile(t, b.config), "location: "+b.backups, "location: "+fifo, 1)
	if err := os.WriteFile(b.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r := drill(t, b.env, "validate")
	if r.code != 2 || !strings.Contains(r.stderr, "drill.yaml:6:") || !strings.Contains(r.stderr, "is a named pipe (FIFO)") {
		t.Fatalf("validate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := drill(t, b.env, "run", "shop"); r.code != 2 {
		t.Fatalf("run: exit %d\n%s", r.code, r.stderr)
	}
}

// Extensions only a superuser may make are made from the host's files;
// those that reach the network or the host's files are not made.
func TestBackupWithExtensions(t *testing.T) {
	t.Parallel()
	shop := drilltest.Shop(t)
	drilltest.Exec(t, shop, "create schema ext", "create extension pg_stat_statements with schema ext",
		"create extension pg_trgm", "create extension amcheck", "create extension dblink",
		"create index customers_name_trgm on customers using gin (name gin_trgm_ops)")
	for _, format := range []string{"custom", "plain"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			b := setup(t, 1)
			drilltest.DumpAs(t, shop, format, filepath.Join(b.backups, "shop."+format))
			// dblink is left out (its objects would need it); the others
			// are made by the superuser (pg_stat_statements, amcheck) or
			// the restore role (pg_trgm, trusted)
			code, run, r := runJSON(t, b)
			if code != 0 {
				t.Fatalf("exit %d reason %v error %v\n%s", code, run["reason"], run["error"], r.stderr)
			}
		})
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeMaybeGzip(t *testing.T, path, content string, gz bool) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !gz {
		if _, err := f.WriteString(content); err != nil {
			t.Fatal(err)
		}
		return
	}
	zw := gzip.NewWriter(f)
	if _, err := zw.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

// A `pg_dump -C` plain dump is restored into the database it creates, or
// into target.database when set.
func TestCreateDatabasePlainDump(t *testing.T) {
	t.Parallel()
	shop := drilltest.Shop(t)
	for _, override := range []string{"", "elsewhere"} {
		t.Run("database="+override, func(t *testing.T) {
			t.Parallel()
			b := setup(t, 1)
			drilltest.Dump(t, shop, "-Fp", "-C", "-f", filepath.Join(b.backups, "shop.sql"))
			if override != "" {
				cfg := strings.Replace(readFile(t, b.config), "      dir: ", "      database: "+override+"\n      dir: ", 1)
				if err := os.WriteFile(b.config, []byte(cfg), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			code, run, r := runJSON(t, b)
			if code != 0 {
				t.Fatalf("exit %d reason %v error %v\n%s", code, run["reason"], run["error"], r.stderr)
			}
			want := override
			if want == "" {
				cfg, err := pgx.ParseConfig(shop)
				if err != nil {
					t.Fatal(err)
				}
				want = cfg.Database
			}
			details := run["target"].(map[string]any)["details"].(map[string]any)
			if details["database"] != want {
				t.Errorf("restored into %v, want %s", details["database"], want)
			}
		})
	}
}

// Whoever can write to the state database cannot forge history undetected
// when runs are sealed with a key kept outside it: a changed status, a
// record rewritten with its chain hash recomputed (no secret needed), a
// removed seal, a seal or sign-off claiming a key drill does not know, a
// removed record and deleted newest runs are each caught.
func TestForgedHistoryDetected(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	drilltest.DumpAs(t, drilltest.Shop(t), "custom", filepath.Join(b.backups, "shop.dump"))
	dir := t.TempDir()
	sealing, signing := filepath.Join(dir, "sealing.key"), filepath.Join(dir, "evidence.key")
	if r := drill(t, nil, "evidence", "keygen", "--sealing", "--out", sealing); r.code != 0 || !strings.Contains(r.stdout, "DRILL_SEALING_KEY") {
		t.Fatalf("keygen --sealing: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := drill(t, nil, "evidence", "keygen", "--out", signing); r.code != 0 {
		t.Fatalf("keygen: %d %s", r.code, r.stderr)
	}
	env := append(b.env, "DRILL_SEALING_KEY="+sealing, "DRILL_EVIDENCE_KEY="+signing)
	for range 3 {
		// the chain hash is in every run's JSON, so in every webhook too
		code, run, r := runJSON(t, bundle{env: env, config: b.config})
		if code != 0 || run["integrity"] != "sealed" || len(fmt.Sprint(run["chain_hash"])) != 64 {
			t.Fatalf("run: exit %d integrity %v chain_hash %v\n%s", code, run["integrity"], run["chain_hash"], r.stderr)
		}
	}
	export := func(name string) string {
		t.Helper()
		out := filepath.Join(dir, name)
		if r := drill(t, env, "evidence", "export", "--out", out); r.code != 0 {
			t.Fatalf("export: %d %s %s", r.code, r.stdout, r.stderr)
		}
		return out
	}
	verify := func(zip string, args ...string) result {
		t.Helper()
		return drill(t, nil, append([]string{"evidence", "verify", zip, "--pubkey", signing + ".pub"}, args...)...)
	}
	show := func(id string) map[string]any {
		t.Helper()
		r := drill(t, env, "show", id, "--json")
		var run map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &run); err != nil {
			t.Fatalf("show %s: %v %s %s", id, err, r.stdout, r.stderr)
		}
		return run
	}
	old := export("old.zip")
	if r := verify(old); r.code != 0 || !strings.Contains(r.stdout, "seals: 3 run(s)") {
		t.Fatalf("verify of an untouched bundle: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	state := strings.TrimPrefix(b.env[0], "DRILL_DATABASE_URL=")
	sql := func(q ...string) {
		t.Helper()
		drilltest.Exec(t, state, q...)
	}

	// 1. a sealed run's status changed in place
	sql("update drill_runs set status = 'failed', reason = 'check_failed' where id = 1")
	if run := show("1"); run["integrity"] != "altered" || !strings.Contains(fmt.Sprint(run["integrity_problem"]), "columns differ") {
		t.Errorf("changed status: integrity %v %v", run["integrity"], run["integrity_problem"])
	}
	if r := drill(t, env, "show", "1"); !strings.Contains(r.stdout, "INTEGRITY: ALTERED") || !strings.Contains(r.stdout, "the sealed record says: PASSED") {
		t.Errorf("show does not flag the changed run:\n%s", r.stdout)
	}
	if r := verify(export("status.zip")); r.code != 1 || !strings.Contains(r.stdout, "run 1 (shop): its row in the state database was changed") {
		t.Errorf("verify after a changed status: %d\n%s", r.code, r.stdout)
	}
	sql("update drill_runs set status = 'passed', reason = null where id = 1")
	if run := show("1"); run["integrity"] != "sealed" {
		t.Fatalf("restored row: integrity %v %v", run["integrity"], run["integrity_problem"])
	}

	// 2. the record rewritten with its chain hash recomputed in SQL
	sql(`update drill_runs set status = 'failed', record = replace(record, '"status":"passed"', '"status":"failed"') where id = 2`,
		`update drill_runs set chain_hash = encode(sha256(decode(prev_hash, 'hex') || convert_to(record, 'UTF8')), 'hex') where id = 2`)
	if run := show("2"); run["integrity"] != "altered" || !strings.Contains(fmt.Sprint(run["integrity_problem"]), "seal does not match") {
		t.Errorf("rewritten record: integrity %v %v", run["integrity"], run["integrity_problem"])
	}
	if r := verify(export("rewritten.zip")); r.code != 1 || !strings.Contains(r.stdout, "run 2 (shop): its seal does not match its chain hash") {
		t.Errorf("verify after a rewritten record: %d\n%s", r.code, r.stdout)
	}
	// ... and its seal removed as well
	sql("update drill_runs set seal = null, seal_key_id = null where id = 2")
	if run := show("2"); run["integrity"] != "altered" || !strings.Contains(fmt.Sprint(run["integrity_problem"]), "seal was removed") {
		t.Errorf("removed seal: integrity %v %v", run["integrity"], run["integrity_problem"])
	}
	if r := verify(export("unsealed.zip")); r.code != 1 || !strings.Contains(r.stdout, "run 2 (shop): not sealed, though run 1 before it was") {
		t.Errorf("verify after a removed seal: %d\n%s", r.code, r.stdout)
	}

	// 3. sign-offs: one given through drill is sealed and verifies; one
	// written into drill_signoffs by hand, or edited there, does not.
	if r := drill(t, env, "evidence", "signoff", "1", "--by", "Dana Lee", "--note", "reviewed"); r.code != 0 {
		t.Fatalf("signoff: %d %s", r.code, r.stderr)
	}
	if sos, _ := show("1")["signoffs"].([]any); len(sos) != 1 || fmt.Sprint(sos[0].(map[string]any)["seal"]) == "<nil>" {
		t.Fatalf("the sign-off is not sealed: %v", sos)
	}
	// without the sealing key (only its public half), a sign-off on a
	// sealed run is refused: unsealed, it would read as forged
	pubOnly := append(b.env, "DRILL_SEALING_PUBKEY="+sealing+".pub")
	if r := drill(t, pubOnly, "evidence", "signoff", "1", "--by", "Sam", "--note", "late"); r.code != 2 || !strings.Contains(r.stderr, "DRILL_SEALING_KEY is not set") {
		t.Errorf("sign-off without the sealing key: exit %d %s", r.code, r.stderr)
	}
	if r := verify(export("signed.zip")); strings.Contains(r.stdout, "sign-off") { // run 2 is still broken: only sign-off problems count here
		t.Errorf("verify finds a problem with a sign-off given through drill:\n%s", r.stdout)
	}
	sql("update drill_signoffs set note = 'reviewed, all fine' where run_id = 1")
	if r := verify(export("edited-signoff.zip")); r.code != 1 || !strings.Contains(r.stdout, "run 1 (shop): sign-off 1 (review by Dana Lee): its seal does not match it") {
		t.Errorf("verify after an edited sign-off: %d\n%s", r.code, r.stdout)
	}
	sql("delete from drill_signoffs", "insert into drill_signoffs (run_id, kind, signed_by, note) values (1, 'review', 'CFO', 'approved')")
	if r := verify(export("forged-signoff.zip")); r.code != 1 || !strings.Contains(r.stdout, "run 1 (shop): sign-off 1 (review by CFO) carries no seal, though the run was sealed by the key") {
		t.Errorf("verify after a forged sign-off: %d\n%s", r.code, r.stdout)
	}
	sql("delete from drill_signoffs")

	// 4. seals that claim a key drill does not know (no secret needed to
	// write them): the run, and a sign-off
	sql("update drill_runs set seal = 'AAAA', seal_key_id = '0123456789abcdef' where id = 2")
	if run := show("2"); run["integrity"] != "altered" || !strings.Contains(fmt.Sprint(run["integrity_problem"]), "sealed by key 0123456789abcdef, which is neither the sealing key") {
		t.Errorf("seal of an unknown key: integrity %v %v", run["integrity"], run["integrity_problem"])
	}
	if r := verify(export("unknown-key.zip")); r.code != 1 || !strings.Contains(r.stdout, "run 2 (shop): sealed by key 0123456789abcdef, which is neither") {
		t.Errorf("verify of a seal by an unknown key: %d\n%s", r.code, r.stdout)
	}
	sql("insert into drill_signoffs (run_id, kind, signed_by, note, signed_at, seal, seal_key_id) values (1, 'review', 'CFO', 'approved', now(), 'AAAA', '0123456789abcdef')")
	if run := show("1"); run["integrity"] != "altered" || !strings.Contains(fmt.Sprint(run["integrity_problem"]), "sign-off 1 (review by CFO) is sealed by key 0123456789abcdef") {
		t.Errorf("sign-off sealed by an unknown key: integrity %v %v", run["integrity"], run["integrity_problem"])
	}
	if r := drill(t, env, "show", "1"); !strings.Contains(r.stdout, "INTEGRITY: ALTERED") {
		t.Errorf("show does not flag the forged sign-off:\n%s", r.stdout)
	}
	if r := drill(t, env, "history", "shop", "--json"); !strings.Contains(r.stdout, "sign-off 1 (review by CFO) is sealed by key") {
		t.Errorf("history does not flag the forged sign-off:\n%s", r.stdout)
	}
	if r := verify(export("unknown-key-signoff.zip")); r.code != 1 || !strings.Contains(r.stdout, "run 1 (shop): sign-off 1 (review by CFO) is sealed by key 0123456789abcdef") {
		t.Errorf("verify of a sign-off sealed by an unknown key: %d\n%s", r.code, r.stdout)
	}
	sql("delete from drill_signoffs")

	// 5. the newest run's status changed and its record, chain hash and
	// seal removed: it reads as finished with no record after sealed ones
	sql(`update drill_runs set status = 'failed', reason = 'check_failed', record = null, prev_hash = null, chain_hash = null,
		seal = null, seal_key_id = null, sealed_at = null where id = 3`)
	if run := show("3"); run["integrity"] != "altered" || !strings.Contains(fmt.Sprint(run["integrity_problem"]), "has no sealed record") {
		t.Errorf("removed record: integrity %v %v", run["integrity"], run["integrity_problem"])
	}
	if r := drill(t, env, "history", "shop"); !strings.Contains(r.stdout, "(ALTERED)") {
		t.Errorf("history does not flag the run without its record:\n%s", r.stdout)
	}
	if r := verify(export("unrecorded.zip")); r.code != 1 || !strings.Contains(r.stdout, "run 3 (shop): its row in the state database was changed after it was sealed (the run is finished but has no sealed record") {
		t.Errorf("verify after a removed record: %d\n%s", r.code, r.stdout)
	}

	// 6. the newest run deleted: the new bundle no longer extends the old
	sql("delete from drill_checks where run_id = 3", "delete from drill_phases where run_id = 3",
		"delete from drill_targets where run_id = 3", "delete from drill_runs where id = 3")
	r := verify(export("truncated.zip"), "--previous", old)
	if r.code != 1 || !strings.Contains(r.stdout, "drill shop: this bundle does not extend the previous one: its newest run 3") {
		t.Errorf("verify --previous after a deleted run: %d\n%s", r.code, r.stdout)
	}
	if !strings.Contains(r.stdout, "run 2 (shop): differs from the previous bundle's") {
		t.Errorf("verify --previous does not name the rewritten run:\n%s", r.stdout)
	}
}

// Tar and uncompressed directory archives cut short: pg_restore loads what
// is there without complaint, drill checks each table's data is whole.
func TestTruncatedArchivesFail(t *testing.T) {
	t.Parallel()
	prod := drilltest.NewDatabase(t)
	drilltest.Exec(t, prod, "create table events (id int, payload text)",
		"insert into events select g, md5(g::text) from generate_series(1, 50000) g")
	dir := t.TempDir()
	tarPath := drilltest.DumpAs(t, prod, "tar", filepath.Join(dir, "full.tar"))
	full, err := os.ReadFile(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	dirArchive := filepath.Join(dir, "z0.dir")
	drilltest.Dump(t, prod, "-Fd", "-Z0", "-f", dirArchive)
	gzArchive := filepath.Join(dir, "gz.dir")
	drilltest.Dump(t, prod, "-Fd", "-f", gzArchive) // data files gzipped
	cases := map[string]func(backups string){
		"gzip recut": func(backups string) { // a gzipped data file cut at a line and compressed again
			dst := filepath.Join(backups, "events.dir")
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(gzArchive)
			cut := 0
			for _, e := range entries {
				b, _ := os.ReadFile(filepath.Join(gzArchive, e.Name()))
				if strings.HasSuffix(e.Name(), ".dat.gz") {
					zr, err := gzip.NewReader(bytes.NewReader(b))
					if err != nil {
						t.Fatal(err)
					}
					data, _ := io.ReadAll(zr)
					if len(data) > 100000 { // as zcat | head -n | gzip does
						data = data[:len(data)/2]
						data = data[:bytes.LastIndexByte(data, '\n')+1]
						var buf bytes.Buffer
						zw := gzip.NewWriter(&buf)
						_, _ = zw.Write(data)
						_ = zw.Close()
						b, cut = buf.Bytes(), cut+1
					}
				}
				writeFile(t, filepath.Join(dst, e.Name()), b)
			}
			if cut != 1 {
				t.Fatalf("%d gzipped data files cut, want 1", cut)
			}
		},
		"tar cut": func(backups string) {
			writeFile(t, filepath.Join(backups, "events.tar"), full[:len(full)*2/5])
		},
		"directory data cut": func(backups string) {
			dst := filepath.Join(backups, "events.dir")
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(dirArchive)
			for _, e := range entries {
				b, _ := os.ReadFile(filepath.Join(dirArchive, e.Name()))
				if strings.HasSuffix(e.Name(), ".dat") && e.Name() != "toc.dat" && len(b) > 100000 {
					b = b[:len(b)/2]
					b = b[:strings.LastIndexByte(string(b), '\n')+1] // cut at a line, as head -n does
				}
				writeFile(t, filepath.Join(dst, e.Name()), b)
			}
		},
	}
	for name, prepare := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, 1)
			prepare(b.backups)
			code, run, r := runJSON(t, b)
			if code != 1 || run["reason"] != "restore_failed" || !strings.Contains(fmt.Sprint(run["error"]), "backup is truncated") {
				t.Fatalf("exit %d reason %v error %v\n%s", code, run["reason"], run["error"], r.stderr)
			}
			drilltest.AssertNothingLeft(t, b.targetDir)
		})
	}
}

// A `pg_dump -C` dump of a database with settings connects to it twice.
func TestCreateDatabaseDumpWithSettings(t *testing.T) {
	t.Parallel()
	shop := drilltest.Shop(t)
	cfg, err := pgx.ParseConfig(shop)
	if err != nil {
		t.Fatal(err)
	}
	drilltest.Exec(t, shop, fmt.Sprintf("alter database %s set work_mem = '8MB'", pgx.Identifier{cfg.Database}.Sanitize()))
	b := setup(t, 1)
	drilltest.Dump(t, shop, "-Fp", "-C", "-f", filepath.Join(b.backups, "shop.sql"))
	if code, run, r := runJSON(t, b); code != 0 {
		t.Fatalf("exit %d reason %v error %v\n%s", code, run["reason"], run["error"], r.stderr)
	}
}

// A backup cannot make the checksum check compute what it wants by
// shadowing the function the check calls.
func TestChecksumNotShadowed(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	shop := drilltest.Shop(t)
	drilltest.Exec(t, shop, `create function public.hash_record_extended(public.orders, integer) returns bigint
		language sql immutable as 'select 1::bigint'`)
	drilltest.DumpAs(t, shop, "custom", filepath.Join(b.backups, "shop.dump"))
	cfg := strings.Replace(readFile(t, b.config), "      - type: checksum\n        table: public.orders\n",
		"      - type: checksum\n        table: public.orders\n        expect: \"00000000000007d0\"\n", 1)
	if err := os.WriteFile(b.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	code, run, r := runJSON(t, b)
	if code != 1 || run["reason"] != "check_failed" {
		t.Fatalf("exit %d reason %v: the shadowing function decided the checksum\n%s", code, run["reason"], r.stderr)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// drill run killed with SIGKILL in the middle of a restore: its server and
// pg_restore die with it, with no other drill command run.
func TestKilledRunLeavesNoProcess(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	drilltest.BigDump(t, b.backups)
	cmd := exec.Command(drillBin, "run", "shop", "--json")
	cmd.Env = append(os.Environ(), b.env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	restoring := make(chan struct{})
	watchPhase(stderr, "restore", func() { close(restoring) })
	select {
	case <-restoring:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("the restore never started")
	}
	drilltest.WaitFor(t, 30*time.Second, "pg_restore to run", func() bool {
		for _, p := range drilltest.ProcessesMentioning(b.targetDir) {
			if strings.Contains(p, "pg_restore") {
				return true
			}
		}
		return false
	})
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	drilltest.WaitFor(t, 10*time.Second, "the server and pg_restore to die with drill", func() bool {
		return len(drilltest.ProcessesMentioning(b.targetDir)) == 0
	})
	// the directory stays for the sweeper, which ends the run once its
	// heartbeat is stale (TestWorkerKilledDuringRestore covers that)
}

// Once a state database holds sealed runs, the commands that record runs
// refuse to start without the sealing key (exit 2, saying so): a run
// recorded without a seal would read as one whose seal was removed. With
// the key, they work.
func TestUnsealedRunRefusedBesideSealedOnes(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	drilltest.DumpAs(t, drilltest.Shop(t), "custom", filepath.Join(b.backups, "shop.dump"))
	sealing := filepath.Join(t.TempDir(), "sealing.key")
	if r := drill(t, nil, "evidence", "keygen", "--sealing", "--out", sealing); r.code != 0 {
		t.Fatalf("keygen --sealing: %d %s", r.code, r.stderr)
	}
	// no sealed run yet: a run without the key is recorded (chained, unsigned)
	if r := drill(t, b.env, "run", "shop"); r.code != 0 {
		t.Fatalf("first run without a key: %d %s", r.code, r.stderr)
	}
	withKey := append(b.env, "DRILL_SEALING_KEY="+sealing)
	if r := drill(t, withKey, "run", "shop"); r.code != 0 {
		t.Fatalf("sealed run: %d %s", r.code, r.stderr)
	}
	for _, args := range [][]string{{"run", "shop"}, {"run", "--all"}, {"sweep"}, {"worker"}, {"serve", "--addr", "127.0.0.1:0"}} {
		r := drill(t, b.env, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "DRILL_SEALING_KEY is not set") {
			t.Errorf("drill %v without the key: exit %d, want 2 saying so\n%s", args, r.code, r.stderr)
		}
	}
	if r := drill(t, b.env, "history", "--json"); r.code != 0 || strings.Count(r.stdout, `"drill"`) != 2 {
		t.Errorf("a refused run was recorded, or history refused: %d %s", r.code, r.stdout)
	}
	if r := drill(t, withKey, "run", "shop"); r.code != 0 {
		t.Fatalf("run with the key: %d %s", r.code, r.stderr)
	}

	// A new sealing key: runs the old one sealed check with its public half
	// (DRILL_SEALING_PREVIOUS_PUBKEYS); without it they cannot be trusted.
	newKey := filepath.Join(t.TempDir(), "sealing2.key")
	if r := drill(t, nil, "evidence", "keygen", "--sealing", "--out", newKey); r.code != 0 {
		t.Fatalf("keygen --sealing: %d %s", r.code, r.stderr)
	}
	rotated := append(b.env, "DRILL_SEALING_KEY="+newKey, "DRILL_SEALING_PREVIOUS_PUBKEYS="+sealing+".pub")
	if r := drill(t, rotated, "run", "shop"); r.code != 0 {
		t.Fatalf("run with the new key: %d %s", r.code, r.stderr)
	}
	integrity := func(env []string) string {
		r := drill(t, env, "history", "--json")
		var runs []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &runs); err != nil {
			t.Fatalf("history: %v %s %s", err, r.stdout, r.stderr)
		}
		var out []string
		for _, run := range runs {
			out = append(out, fmt.Sprint(run["integrity"]))
		}
		return strings.Join(out, " ")
	}
	if got := integrity(rotated); got != "sealed sealed sealed chained" {
		t.Errorf("after a key change, newest first: %s, want sealed sealed sealed chained", got)
	}
	if got := integrity(append(b.env, "DRILL_SEALING_KEY="+newKey)); !strings.HasPrefix(got, "sealed altered altered") {
		t.Errorf("without the previous key: %s, want the old key's runs altered", got)
	}
	signing := filepath.Join(t.TempDir(), "evidence.key")
	if r := drill(t, nil, "evidence", "keygen", "--out", signing); r.code != 0 {
		t.Fatalf("keygen: %d %s", r.code, r.stderr)
	}
	zip := filepath.Join(t.TempDir(), "rotated.zip")
	if r := drill(t, append(rotated, "DRILL_EVIDENCE_KEY="+signing), "evidence", "export", "--out", zip); r.code != 0 {
		t.Fatalf("export: %d %s", r.code, r.stderr)
	}
	if r := drill(t, nil, "evidence", "verify", zip, "--pubkey", signing+".pub"); r.code != 0 || !strings.Contains(r.stdout, "seals: 3 run(s)") {
		t.Errorf("verify of a bundle with runs of two sealing keys: %d\n%s", r.code, r.stdout)
	}
}

// A dump made by a newer pg_dump than this host's pg_restore reads cannot
// be drilled here: exit 3 (could not be carried out), naming the version
// it needs. The archive is this host's own with its format version byte
// raised (the one such archive no pg_dump here can make).
func TestNewerArchiveExitsUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	path := drilltest.DumpAs(t, drilltest.Shop(t), "custom", filepath.Join(b.backups, "shop.dump"))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[6] = 16 // format 1.16: PostgreSQL 17's pg_dump
	writeFile(t, path, data)
	code, run, r := runJSON(t, b)
	if code != 3 || !strings.Contains(fmt.Sprint(run["error"]), "PostgreSQL 17 or later") {
		t.Fatalf("exit %d (want 3), error %v\n%s", code, run["error"], r.stderr)
	}
}
