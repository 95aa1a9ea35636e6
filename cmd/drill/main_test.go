package main_test

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"drill/drills/drilltest"
)

var drillBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "drill-cli-test-")
	if err != nil {
		panic(err)
	}
	drillBin = filepath.Join(dir, "drill")
	if out, err := exec.Command("go", "build", "-o", drillBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build drill: %v\n%s", err, out)
		os.Exit(1)
	}
	code := drilltest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// drill runs the binary with env added to the environment.
func drill(t testing.TB, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(drillBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, stdout.String(), stderr.String()}
}

type bundle struct {
	env       []string
	config    string
	backups   string
	targetDir string
}

// setup writes a config for the Shop database's backups and points the
// state database at a fresh one.
func setup(t *testing.T, rowCountMin int) bundle {
	t.Helper()
	b := bundle{backups: drilltest.BackupDir(t), targetDir: drilltest.SharedDir(t)}
	b.config = filepath.Join(t.TempDir(), "drill.yaml")
	yaml := fmt.Sprintf(`drills:
  - name: shop
    timeout: 5m
    source:
      type: pgdump
      location: %s
    target:
      type: local
      dir: %s
    objectives: { rto: 10m, rpo: 26h }
    checks:
      - type: row_count
        table: public.orders
        min: %d
      - type: checksum
        table: public.orders
      - type: recency
        table: public.orders
        column: created_at
        max_age: 26h
      - type: sql
        name: no-negative-totals
        query: select count(*) from orders where total < 0
        expect: "0"
`, b.backups, b.targetDir, rowCountMin)
	if err := os.WriteFile(b.config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	b.env = []string{"DRILL_DATABASE_URL=" + drilltest.NewDatabase(t), "DRILL_CONFIG=" + b.config}
	return b
}

func TestRunPassedJSON(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	drilltest.DumpAs(t, drilltest.Shop(t), "custom", filepath.Join(b.backups, "shop.dump"))
	r := drill(t, b.env, "run", "shop", "--json")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, r.stdout)
	}
	for _, key := range []string{"id", "drill", "status", "trigger", "started_at", "finished_at", "rto_seconds", "rpo_seconds",
		"data_rpo_seconds", "objectives", "backup", "target", "phases", "checks", "error"} {
		if _, ok := got[key]; !ok {
			t.Errorf("JSON lacks %q", key)
		}
	}
	if got["status"] != "passed" || got["drill"] != "shop" || got["trigger"] != "manual" {
		t.Errorf("status %v drill %v trigger %v", got["status"], got["drill"], got["trigger"])
	}
	// the digest, computed while the backup was restored, is the file's
	dump, err := os.ReadFile(filepath.Join(b.backups, "shop.dump"))
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(dump); got["backup"].(map[string]any)["sha256"] != hex.EncodeToString(sum[:]) {
		t.Errorf("backup %v, want sha256 %x", got["backup"], sum)
	}
	obj := got["objectives"].(map[string]any)
	if obj["rto_seconds"] != 600.0 || obj["rpo_seconds"] != 93600.0 || obj["rto_met"] != true || obj["rpo_met"] != true {
		t.Errorf("objectives %v", obj)
	}
	if _, err := time.Parse(time.RFC3339, got["started_at"].(string)); err != nil {
		t.Errorf("started_at: %v", err)
	}
	target := got["target"].(map[string]any)
	if target["type"] != "local" || target["torn_down_at"] == nil {
		t.Errorf("target %v", target)
	}
	if n := len(got["phases"].([]any)); n != 5 {
		t.Errorf("%d phases", n)
	}
	check := got["checks"].([]any)[0].(map[string]any)
	for _, key := range []string{"name", "type", "expected", "actual", "passed", "duration_seconds", "error"} {
		if _, ok := check[key]; !ok {
			t.Errorf("check JSON lacks %q", key)
		}
	}
	// logs are JSON lines on stderr, each line of the drill with run_id and drill
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if entry["component"] == "runner" && (entry["run_id"] == nil || entry["drill"] != "shop") {
			t.Errorf("runner log line without run_id/drill: %s", line)
		}
	}
	drilltest.AssertNothingLeft(t, b.targetDir)

	// history and show read the same record
	h := drill(t, b.env, "history", "--json")
	var hist []map[string]any
	if err := json.Unmarshal([]byte(h.stdout), &hist); err != nil || h.code != 0 || len(hist) != 1 || hist[0]["id"] != got["id"] {
		t.Fatalf("history: exit %d, %v, %s", h.code, err, h.stdout)
	}
	s := drill(t, b.env, "show", fmt.Sprint(got["id"]))
	if s.code != 0 || !strings.Contains(s.stdout, "PASSED") || !strings.Contains(s.stdout, "no-negative-totals") {
		t.Fatalf("show: exit %d\n%s", s.code, s.stdout)
	}
	s = drill(t, b.env, "show", "999999")
	if s.code != 2 || !strings.Contains(s.stderr, "no run 999999") {
		t.Fatalf("show unknown run: exit %d %s", s.code, s.stderr)
	}

	// Where a ${VAR} of a drill is not set (an auditor's shell), show and
	// history still read the history, saying what was not read; run
	// refuses, naming the line.
	yaml, err := os.ReadFile(b.config)
	if err != nil {
		t.Fatal(err)
	}
	unset := strings.Replace(string(yaml), "location: "+b.backups, "location: ${DRILL_TEST_UNSET_BACKUPS}", 1)
	if err := os.WriteFile(b.config, []byte(unset), 0o644); err != nil {
		t.Fatal(err)
	}
	s = drill(t, b.env, "show", fmt.Sprint(got["id"]), "--json")
	var shown map[string]any
	if s.code != 0 || json.Unmarshal([]byte(s.stdout), &shown) != nil || shown["id"] != got["id"] ||
		!strings.Contains(s.stderr, "drill.yaml:6: environment variable DRILL_TEST_UNSET_BACKUPS is not set") ||
		!strings.Contains(s.stderr, "only the recorded history is shown") {
		t.Fatalf("show with an unset variable: exit %d\nstdout: %s\nstderr: %s", s.code, s.stdout, s.stderr)
	}
	if h := drill(t, b.env, "history"); h.code != 0 || !strings.Contains(h.stdout, "shop") {
		t.Fatalf("history with an unset variable: exit %d\n%s\n%s", h.code, h.stdout, h.stderr)
	}
	if r := drill(t, b.env, "run", "shop"); r.code != 2 || !strings.Contains(r.stderr, "drill.yaml:6: environment variable DRILL_TEST_UNSET_BACKUPS is not set") {
		t.Fatalf("run with an unset variable: exit %d\n%s", r.code, r.stderr)
	}
	// Any other problem is not passed over: a misspelt key could hide
	// the state database's URL.
	if err := os.WriteFile(b.config, []byte("databse_url: x\n"+string(yaml)), 0o644); err != nil {
		t.Fatal(err)
	}
	if s := drill(t, b.env, "show", fmt.Sprint(got["id"])); s.code != 2 || !strings.Contains(s.stderr, "databse_url") {
		t.Fatalf("show with a misspelt key: exit %d\n%s", s.code, s.stderr)
	}
}

func TestRunFailedCheckExitsOne(t *testing.T) {
	t.Parallel()
	b := setup(t, 1_000_000)
	drilltest.DumpAs(t, drilltest.Shop(t), "tar", filepath.Join(b.backups, "shop.tar"))
	r := drill(t, b.env, "run", "shop")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "FAILED (check_failed)") || !strings.Contains(r.stderr, "drill shop failed (check_failed)") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

func TestRunNoBackupExitsOne(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	r := drill(t, b.env, "run", "shop", "--json")
	if r.code != 1 || !strings.Contains(r.stdout, `"reason": "no_backup"`) {
		t.Fatalf("exit %d\n%s", r.code, r.stdout)
	}
}

func TestUsageAndConfigErrorsExitTwo(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("drills:\n  - name: shop\n    timeout: forever\n    source: {type: pgdump, location: /x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"config error with line", []string{"validate", "--config", bad}, bad + `:3: bad duration "forever"`},
		{"run with a bad config", []string{"run", "shop", "--config", bad}, bad + ":3:"},
		{"missing config", []string{"validate", "--config", "/nonexistent/drill.yaml"}, "/nonexistent/drill.yaml: no such file"},
		{"unknown drill", []string{"run", "nope"}, `no drill named "nope"`},
		{"no drill name", []string{"run"}, "want NAME"},
		{"keep with a space", []string{"run", "shop", "--keep", "30m"}, "drill run shop --keep=30m"},
		{"unknown flag", []string{"run", "shop", "--fast"}, "unknown flag: --fast"},
		{"bad run id", []string{"show", "abc"}, `run id "abc"`},
		{"bad log level", []string{"history", "--log-level", "loud"}, "--log-level"},
		{"bad log format, a command that logs nothing", []string{"version", "--log-format", "xml"}, `--log-format "xml": want json or text`},
		{"bad log level, validate", []string{"validate", "--log-level", "loud"}, `--log-level "loud"`},
		{"keep for no time", []string{"run", "shop", "--keep=0s"}, "--keep=0s: keep the instance for a positive duration"},
	}
	for _, tc := range cases {
		r := drill(t, b.env, tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", tc.name, r.code, r.stderr, tc.want)
		}
	}
	r := drill(t, b.env, "validate")
	if r.code != 0 || !strings.Contains(r.stdout, "ok, 1 drill(s)") {
		t.Errorf("validate good config: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = drill(t, nil, "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "Exit codes:") || !strings.Contains(r.stdout, "130") {
		t.Errorf("--help does not document exit codes:\n%s", r.stdout)
	}
}

func TestUnreachableStateDatabaseExitsThree(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	env := append(b.env, "DRILL_DATABASE_URL=postgres://drill:hunter2secret@127.0.0.1:1/drill?connect_timeout=2")
	for _, args := range [][]string{{"run", "shop"}, {"history"}, {"migrate"}} {
		r := drill(t, env, args...)
		if r.code != 3 || !strings.Contains(r.stderr, "state database 127.0.0.1:1/drill unreachable") {
			t.Errorf("%v: exit %d, stderr %q; want 3", args, r.code, r.stderr)
		}
		if strings.Contains(r.stderr+r.stdout, "hunter2secret") {
			t.Errorf("%v: the password was printed: %s", args, r.stderr)
		}
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	r := drill(t, b.env, "migrate", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, "001_runs.sql") {
		t.Fatalf("first migrate: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = drill(t, b.env, "migrate")
	if r.code != 0 || !strings.Contains(r.stdout, "up to date") {
		t.Fatalf("second migrate: exit %d %s", r.code, r.stdout)
	}
}

// SIGINT (Ctrl-C) in the middle of the restore: exit 130, the instance is
// torn down, the run is recorded as interrupted, nothing is left running.
func TestInterruptDuringRestore(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	drilltest.BigDump(t, b.backups)

	cmd := exec.Command(drillBin, "run", "shop", "--json")
	cmd.Env = append(os.Environ(), b.env...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sent := make(chan struct{})
	watchPhase(stderr, "restore", func() {
		time.Sleep(500 * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGINT)
		close(sent)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		t.Fatal("drill did not exit after SIGINT")
	}
	select {
	case <-sent:
	default:
		t.Fatalf("the restore never started: %v\n%s", err, stdout.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit %v, want 130\n%s", err, stdout.String())
	}
	var run map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &run); err != nil {
		t.Fatalf("stdout: %v\n%s", err, stdout.String())
	}
	if run["reason"] != "interrupted" || run["target"].(map[string]any)["state"] != "destroyed" {
		t.Fatalf("run: reason %v target %v", run["reason"], run["target"])
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

func TestEvidenceCommands(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	drilltest.DumpAs(t, drilltest.Shop(t), "custom", filepath.Join(b.backups, "shop.dump"))
	if r := drill(t, b.env, "run", "shop"); r.code != 0 {
		t.Fatalf("run: %d %s", r.code, r.stderr)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "evidence.key")
	if r := drill(t, nil, "evidence", "keygen", "--out", key); r.code != 0 || !strings.Contains(r.stdout, "BEGIN PUBLIC KEY") {
		t.Fatalf("keygen: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := drill(t, b.env, "evidence", "signoff", "1", "--by", "Dana Lee <dana@example.com>", "--note", "reviewed"); r.code != 0 {
		t.Fatalf("signoff: %d %s", r.code, r.stderr)
	}
	if r := drill(t, b.env, "evidence", "signoff", "99", "--by", "x"); r.code != 2 || !strings.Contains(r.stderr, "no run 99") {
		t.Fatalf("signoff of an unknown run: %d %s", r.code, r.stderr)
	}
	// the sign-off shows where people look
	if r := drill(t, b.env, "show", "1"); !strings.Contains(r.stdout, "review:  reviewed by Dana Lee <dana@example.com>") {
		t.Errorf("show lacks the sign-off:\n%s", r.stdout)
	}
	if r := drill(t, b.env, "show", "1", "--json"); !strings.Contains(r.stdout, `"signed_by": "Dana Lee`) {
		t.Errorf("show --json lacks the sign-off:\n%s", r.stdout)
	}
	zip := filepath.Join(dir, "bundle.zip")
	env := append(b.env, "DRILL_EVIDENCE_KEY="+key)
	if r := drill(t, env, "evidence", "export", "--out", zip, "--since", "2020-01-01"); r.code != 0 || !strings.Contains(r.stdout, "1 run, signed") {
		t.Fatalf("export: %d %s %s", r.code, r.stdout, r.stderr)
	}
	// verify needs no database: run it without one
	r := drill(t, []string{"DRILL_DATABASE_URL=postgres://nobody@127.0.0.1:1/x"}, "evidence", "verify", zip, "--pubkey", key+".pub")
	if r.code != 0 || !strings.Contains(r.stdout, "intact") || !strings.Contains(r.stdout, "signature: valid") {
		t.Fatalf("verify: %d %s %s", r.code, r.stdout, r.stderr)
	}
	data, err := os.ReadFile(zip)
	if err != nil {
		t.Fatal(err)
	}
	tampered := filepath.Join(dir, "tampered.zip")
	data[len(data)/3] ^= 0xff // somewhere in the compressed content
	if err := os.WriteFile(tampered, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r = drill(t, nil, "evidence", "verify", tampered, "--pubkey", key+".pub")
	if r.code != 1 {
		t.Fatalf("verify of a tampered bundle: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := drill(t, b.env, "evidence", "export", "--out", zip, "--since", "last year"); r.code != 2 || !strings.Contains(r.stderr, "--since") {
		t.Fatalf("bad --since: %d %s", r.code, r.stderr)
	}
	checkBundleContent(t, zip, key+".pub", dir)
}

// checkBundleContent looks inside a bundle of one real run: its record
// names the backup's digest and how it was chosen, drill's version and
// host; its restore log is a file of the bundle whose digest the sealed
// record carries; the manifest has coverage and controls. A restore log
// edited by hand fails verification by name.
func checkBundleContent(t *testing.T, bundle, pub, dir string) {
	t.Helper()
	zr, err := zip.OpenReader(bundle)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	zr.Close()
	var rf struct {
		Record struct {
			Run struct {
				DrillVersion     string `json:"drill_version"`
				Host             string
				RestoreLogSHA256 string `json:"restore_log_sha256"`
				Backup           struct {
					SHA256    string
					Selection struct {
						Rule       string
						Considered int
						Candidates []struct{ Name string }
					}
				}
			}
		}
	}
	if err := json.Unmarshal(files["runs/1.json"], &rf); err != nil {
		t.Fatal(err)
	}
	run := rf.Record.Run
	if run.DrillVersion == "" || run.Host == "" || len(run.Backup.SHA256) != 64 || run.RestoreLogSHA256 == "" ||
		!strings.Contains(run.Backup.Selection.Rule, "newest file") || len(run.Backup.Selection.Candidates) != 1 {
		t.Errorf("run record: %+v", run)
	}
	log := string(files["logs/1.log"])
	if !strings.Contains(log, "processing data for table") {
		t.Errorf("logs/1.log is not pg_restore's output:\n%s", log)
	}
	var m struct {
		Coverage []struct{ Drill, Period, Status string }
		Controls []struct{ ID string }
	}
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil || len(m.Controls) != 6 {
		t.Errorf("manifest: %v %+v", err, m)
	}
	files["logs/1.log"] = append(files["logs/1.log"], []byte("all fine\n")...)
	out := filepath.Join(dir, "edited-log.zip")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, b := range files {
		w, _ := zw.Create(name)
		_, _ = w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r := drill(t, nil, "evidence", "verify", out, "--pubkey", pub)
	if r.code != 1 || !strings.Contains(r.stdout, "logs/1.log") {
		t.Errorf("a bundle with an edited restore log: exit %d\n%s", r.code, r.stdout)
	}
}

func TestServeRefusesOpenAddressWithoutToken(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	env := append(b.env, "DRILL_WEB_TOKEN=")
	r := drill(t, env, "serve", "--addr", "0.0.0.0:0")
	if r.code != 2 || !strings.Contains(r.stderr, "DRILL_WEB_TOKEN") {
		t.Fatalf("exit %d, stderr %q; want 2 and how to set DRILL_WEB_TOKEN", r.code, r.stderr)
	}
	r = drill(t, env, "serve", "--addr", "nonsense")
	if r.code != 2 {
		t.Fatalf("bad --addr: exit %d", r.code)
	}
}

// drill serve answers on loopback with workers running, and stops on SIGTERM.
func TestServe(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	drilltest.DumpAs(t, drilltest.Shop(t), "custom", filepath.Join(b.backups, "shop.dump"))
	port := freePort(t)
	p := start(t, b.env, "serve", "--addr", "127.0.0.1:"+port)
	var body string
	drilltest.WaitFor(t, 30*time.Second, "the page", func() bool {
		resp, err := http.Get("http://127.0.0.1:" + port + "/drills/shop")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	})
	if !strings.Contains(body, "Run now") {
		t.Fatal("no Run now button")
	}
	resp, err := http.Post("http://127.0.0.1:"+port+"/api/drills/shop/runs", "application/json", nil)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("API enqueue: %v %v", err, resp)
	}
	resp.Body.Close()
	db := stateDB(t, b.env)
	drilltest.WaitFor(t, time.Minute, "the run queued through the API to pass under serve's workers", func() bool {
		rs := runs(t, db)
		return len(rs) == 1 && rs[0].status == "passed" && rs[0].trigger == "api"
	})
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

// drill run --all runs every drill and exits 1 when any failed; --tag
// picks drills by tag.
func TestRunAll(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	drilltest.DumpAs(t, drilltest.Shop(t), "custom", filepath.Join(b.backups, "shop.dump"))
	cfg := readFile(t, b.config) + fmt.Sprintf(`  - name: empty
    tags: [audit]
    source:
      type: pgdump
      location: %s
    target:
      type: local
      dir: %s
`, filepath.Join(b.backups, "nothing-here"), b.targetDir)
	if err := os.WriteFile(b.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(b.backups, "nothing-here"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := drill(t, b.env, "run", "--all", "--parallel", "2", "--json")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 2 {
		t.Fatalf("--all: exit %d %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
	}
	if r.code != 1 || !strings.Contains(r.stderr, "1 drill of 2 drills failed") {
		t.Fatalf("--all with one failing drill: exit %d\n%s", r.code, r.stderr)
	}
	for _, args := range [][]string{{"run", "--tag", "audit"}, {"run", "--all", "--tag", "audit"}} {
		r = drill(t, b.env, args...)
		if r.code != 1 || !strings.Contains(r.stdout, "empty") || strings.Contains(r.stdout, "shop ") {
			t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := drill(t, b.env, "run", "--tag", "nope"); r.code != 2 {
		t.Fatalf("--tag nope: exit %d %s", r.code, r.stderr)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

// A kept instance outlives drill run, can be discarded with one command,
// and is removed by the sweeper once its keep time is over.
func TestKeepAndDiscard(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	drilltest.DumpAs(t, drilltest.Shop(t), "custom", filepath.Join(b.backups, "shop.dump"))
	r := drill(t, b.env, "run", "shop", "--keep=10m", "--json")
	var run map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &run); err != nil || r.code != 0 {
		t.Fatalf("run --keep: exit %d %v\n%s", r.code, err, r.stderr)
	}
	target := run["target"].(map[string]any)
	if target["state"] != "kept" || target["details"].(map[string]any)["kept_until"] == nil || !strings.Contains(r.stderr, "drill discard") {
		t.Fatalf("target %v\n%s", target, r.stderr)
	}
	if len(drilltest.ProcessesMentioning(b.targetDir)) == 0 {
		t.Fatal("the kept server did not outlive drill run")
	}
	id := fmt.Sprint(run["id"])
	if r := drill(t, b.env, "discard", id); r.code != 0 || !strings.Contains(r.stdout, "discarded") {
		t.Fatalf("discard: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
	if r := drill(t, b.env, "discard", id); r.code != 2 || !strings.Contains(r.stderr, "kept no instance") {
		t.Fatalf("second discard: exit %d %s", r.code, r.stderr)
	}
	// kept for a second: the next sweep removes it
	if r := drill(t, b.env, "run", "shop", "--keep=1s"); r.code != 0 {
		t.Fatalf("run --keep=1s: exit %d %s", r.code, r.stderr)
	}
	time.Sleep(1500 * time.Millisecond)
	if r := drill(t, b.env, "sweep"); r.code != 0 {
		t.Fatalf("sweep: exit %d %s", r.code, r.stderr)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

// watchPhase reads drill's JSON log lines from r and calls fn once the
// phase starts; it drains r to its end either way.
func watchPhase(r io.Reader, phase string, fn func()) {
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"phase started"`) && strings.Contains(sc.Text(), `"phase":"`+phase+`"`) {
				fn()
				break
			}
		}
		_, _ = io.Copy(io.Discard, r)
	}()
}

// serve picks up a drill added to its config without a restart: when the
// file changes, and on SIGHUP; a broken config is refused and the one in
// force stays. A run of the new drill, queued from the web, runs under
// serve's own workers.
func TestServeReloadsConfig(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	drilltest.DumpAs(t, drilltest.Shop(t), "custom", filepath.Join(b.backups, "shop.dump"))
	port := freePort(t)
	p := start(t, b.env, "serve", "--addr", "127.0.0.1:"+port)
	status := func(path string) int {
		resp, err := http.Get("http://127.0.0.1:" + port + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	drilltest.WaitFor(t, 30*time.Second, "serve", func() bool { return status("/drills/shop") == 200 })
	if code := status("/drills/copy"); code != 404 {
		t.Fatalf("/drills/copy before it is configured: %d", code)
	}
	good := readFile(t, b.config)
	withCopy := good + strings.Replace(good[strings.Index(good, "  - name: shop"):], "name: shop", "name: copy", 1)
	if err := os.WriteFile(b.config, []byte(withCopy), 0o644); err != nil {
		t.Fatal(err)
	}
	drilltest.WaitFor(t, 20*time.Second, "the new drill's page", func() bool { return status("/drills/copy") == 200 })
	resp, err := http.Post("http://127.0.0.1:"+port+"/api/drills/copy/runs", "application/json", nil)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("API enqueue of the new drill: %v %v", err, resp)
	}
	resp.Body.Close()
	db := stateDB(t, b.env)
	drilltest.WaitFor(t, time.Minute, "the new drill's run to pass under serve's workers", func() bool {
		rs := runs(t, db)
		return len(rs) == 1 && rs[0].status == "passed"
	})
	if err := os.WriteFile(b.config, []byte(withCopy+"  - name: Bad Name\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	drilltest.WaitFor(t, 20*time.Second, "the broken config to be refused", func() bool { return strings.Contains(p.log(), "config not reloaded") })
	if code := status("/drills/copy"); code != 200 {
		t.Fatalf("after a broken config: /drills/copy %d, want the config in force kept", code)
	}
	// SIGHUP, with the file's time and size unchanged since the last look.
	if err := os.WriteFile(b.config, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	drilltest.WaitFor(t, 20*time.Second, "the drill removed again", func() bool { return status("/drills/copy") == 404 })
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	drilltest.WaitFor(t, 20*time.Second, "a reload on SIGHUP", func() bool { return strings.Count(p.log(), `"why":"SIGHUP"`) == 1 })
}

// drill init writes a starter config from a real restore that then
// passes; it never overwrites a file, and writes nothing when the restore
// fails.
func TestInitWritesAConfigThatPasses(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	drilltest.DumpAs(t, drilltest.Shop(t), "custom", filepath.Join(b.backups, "shop.dump"))
	out := filepath.Join(t.TempDir(), "starter.yaml")
	env := []string{b.env[0]} // the state database only: no config yet
	r := drill(t, env, "init", "--from", b.backups, "--name", "shop", "--out", out, "--dir", b.targetDir)
	if r.code != 0 || !strings.Contains(r.stdout, "wrote "+out) {
		t.Fatalf("init: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	text := readFile(t, out)
	for _, want := range []string{"type: row_count", `table: "public.orders"`, "type: recency", `column: "created_at"`, "type: checksum", "type: amcheck", "type: drift"} {
		if !strings.Contains(text, want) {
			t.Errorf("the starter config lacks %q:\n%s", want, text)
		}
	}
	// init's restore checked nothing: it is no drill's last success
	r = drill(t, env, "schedule", "--json", "--config", out)
	if r.code != 0 || !strings.Contains(r.stdout, `"last_success_at": null`) {
		t.Errorf("after init, schedule counts its restore as a success: %d %s", r.code, r.stdout)
	}
	if r := drill(t, env, "run", "shop", "--config", out); r.code != 0 {
		t.Fatalf("the starter config's drill: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// init's own restore (run 1, no checks) is in the history, but is
	// evidence of nothing: controls and coverage count run 2 only.
	bundle := filepath.Join(t.TempDir(), "ev.zip")
	if r := drill(t, env, "evidence", "export", "--out", bundle, "--config", out); r.code != 0 {
		t.Fatalf("export: %d %s", r.code, r.stderr)
	}
	zr, err := zip.OpenReader(bundle)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Coverage []struct{ Runs []int64 }
		Controls []struct{ Runs []int64 }
	}
	for _, f := range zr.File {
		if f.Name == "manifest.json" {
			rc, _ := f.Open()
			_ = json.NewDecoder(rc).Decode(&m)
			rc.Close()
		}
	}
	zr.Close()
	if len(m.Controls) == 0 || fmt.Sprint(m.Controls[0].Runs) != "[2]" || len(m.Coverage) == 0 || fmt.Sprint(m.Coverage[len(m.Coverage)-1].Runs) != "[2]" {
		t.Errorf("init's run counted as evidence: %+v", m)
	}
	if r := drill(t, env, "init", "--from", b.backups, "--out", out); r.code != 2 || !strings.Contains(r.stderr, "never overwrites") {
		t.Fatalf("init onto an existing file: exit %d %s", r.code, r.stderr)
	}
	if readFile(t, out) != text {
		t.Fatal("init changed an existing file")
	}
	empty := filepath.Join(t.TempDir(), "none.yaml")
	if r := drill(t, env, "init", "--from", filepath.Join(b.backups, "nothing"), "--out", empty, "--dir", b.targetDir); r.code != 1 {
		t.Fatalf("init from nowhere: exit %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(empty); err == nil {
		t.Fatal("init wrote a config after a failed restore")
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}
