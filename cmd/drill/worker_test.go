package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"drill/drills/drilltest"

	"github.com/jackc/pgx/v5"
)

// proc is a drill process running in the background.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// start runs drill in the background; cleanup stops it (SIGTERM, then SIGKILL).
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(drillBin, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(time.Minute):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("log of drill %s:\n%s", strings.Join(args, " "), tail(p.log(), 4000))
		}
	})
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("drill did not exit within %s", timeout)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	return 0
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// stateDB migrates and connects to the test's state database.
func stateDB(t *testing.T, env []string) *pgx.Conn {
	t.Helper()
	if r := drill(t, env, "migrate"); r.code != 0 {
		t.Fatalf("migrate: %d %s", r.code, r.stderr)
	}
	var url string
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "DRILL_DATABASE_URL="); ok {
			url = v
		}
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

type runRow struct {
	id                int64
	status, reason    string
	trigger, by       string
	created           time.Time
	started, finished *time.Time
}

func runs(t *testing.T, db *pgx.Conn) []runRow {
	t.Helper()
	rows, err := db.Query(context.Background(), `select id, status, coalesce(reason, ''), trigger, triggered_by, created_at, started_at, finished_at
		from drill_runs order by id`)
	if err != nil {
		t.Fatal(err)
	}
	var out []runRow
	for rows.Next() {
		var r runRow
		if err := rows.Scan(&r.id, &r.status, &r.reason, &r.trigger, &r.by, &r.created, &r.started, &r.finished); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func restoreStarted(t *testing.T, db *pgx.Conn) bool {
	var n int
	_ = db.QueryRow(context.Background(), "select count(*) from drill_phases where name = 'restore'").Scan(&n)
	return n > 0
}

// withSchedule rewrites the test config: schedule, timeout and notify lines.
func rewriteConfig(t *testing.T, b bundle, replace ...string) {
	t.Helper()
	data, err := os.ReadFile(b.config)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer(replace...).Replace(string(data))
	if err := os.WriteFile(b.config, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Two workers against one state database, a drill scheduled every minute:
// each tick runs once, never two runs at the same time.
func TestTwoWorkersRunEachTickOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	drilltest.DumpAs(t, drilltest.Shop(t), "custom", filepath.Join(b.backups, "shop.dump"))
	rewriteConfig(t, b, "    timeout: 5m\n", "    timeout: 5m\n    schedule: \"* * * * *\"\n")
	db := stateDB(t, b.env)
	started := time.Now()
	start(t, b.env, "worker", "--sweep-every", "1h")
	start(t, b.env, "worker", "--sweep-every", "1h")
	// Leadership settles within seconds; count the two ticks after that.
	first := started.Add(15 * time.Second).Truncate(time.Minute).Add(time.Minute)
	second := first.Add(time.Minute)
	drilltest.WaitFor(t, time.Until(second)+90*time.Second, "two finished runs after the second tick", func() bool {
		n := 0
		for _, r := range runs(t, db) {
			if r.finished != nil && !r.created.Before(first.Add(-time.Second)) {
				n++
			}
		}
		return time.Now().After(second.Add(20*time.Second)) && n >= 2
	})
	var ticked []runRow
	for _, r := range runs(t, db) {
		if !r.created.Before(first.Add(-time.Second)) && r.created.Before(second.Add(30*time.Second)) {
			ticked = append(ticked, r)
		}
	}
	if len(ticked) != 2 {
		t.Fatalf("%d runs for two ticks, want exactly 2: %+v", len(ticked), ticked)
	}
	for i, r := range ticked {
		tick := []time.Time{first, second}[i]
		if r.status != "passed" || r.trigger != "schedule" || r.created.Sub(tick) > 15*time.Second {
			t.Errorf("run %d: %s %s trigger %s created %s, want passed, by schedule, at %s", r.id, r.status, r.reason, r.trigger, r.created, tick)
		}
	}
	if ticked[1].started.Before(*ticked[0].finished) {
		t.Errorf("runs overlapped: %+v", ticked)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

// --enqueue while a run is queued is refused; so is a run in this process.
func TestEnqueueTwiceRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	drilltest.DumpAs(t, drilltest.Shop(t), "custom", filepath.Join(b.backups, "shop.dump"))
	r := drill(t, b.env, "run", "shop", "--enqueue", "--json")
	var queued map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &queued); r.code != 0 || err != nil || queued["status"] != "queued" || queued["drill"] != "shop" {
		t.Fatalf("first enqueue: exit %d %v %s %s", r.code, err, r.stdout, r.stderr)
	}
	r = drill(t, b.env, "run", "shop", "--enqueue")
	if r.code != 3 || !strings.Contains(r.stderr, "not queued: drill already has a queued or running run") {
		t.Fatalf("second enqueue: exit %d %s", r.code, r.stderr)
	}
	r = drill(t, b.env, "run", "shop")
	if r.code != 3 || !strings.Contains(r.stderr, "already has a queued or running run") {
		t.Fatalf("run while queued: exit %d %s", r.code, r.stderr)
	}
	start(t, b.env, "worker")
	db := stateDB(t, b.env)
	drilltest.WaitFor(t, time.Minute, "the queued run to pass", func() bool {
		rs := runs(t, db)
		return len(rs) == 1 && rs[0].status == "passed"
	})
	rs := runs(t, db)
	if rs[0].id != int64(queued["id"].(float64)) || rs[0].trigger != "manual" || !strings.Contains(rs[0].by, "@") {
		t.Fatalf("run %+v", rs[0])
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

// A worker killed with SIGKILL in the middle of a restore: its server and
// pg_restore die with it; a new worker with default flags ends the run as
// interrupted and removes everything it left within 90 s of the kill.
func TestWorkerKilledDuringRestore(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	drilltest.BigDump(t, b.backups)
	flags := []string{"worker"}
	first := start(t, b.env, flags...)
	if r := drill(t, b.env, "run", "shop", "--enqueue"); r.code != 0 {
		t.Fatalf("enqueue: %d %s", r.code, r.stderr)
	}
	db := stateDB(t, b.env)
	drilltest.WaitFor(t, time.Minute, "the restore to start", func() bool { return restoreStarted(t, db) })
	time.Sleep(500 * time.Millisecond)
	if procs := drilltest.ProcessesMentioning(b.targetDir); len(procs) == 0 {
		t.Fatal("nothing was running in the target directory before the kill: the test proves nothing")
	}
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	first.wait(t, 10*time.Second)
	drilltest.WaitFor(t, 10*time.Second, "the server and pg_restore to die with the worker", func() bool {
		return len(drilltest.ProcessesMentioning(b.targetDir)) == 0
	})
	start(t, b.env, flags...)
	drilltest.WaitFor(t, 90*time.Second-time.Since(killedAt), "the run to end within 90 s of the kill", func() bool {
		rs := runs(t, db)
		return len(rs) == 1 && rs[0].finished != nil
	})
	rs := runs(t, db)
	if rs[0].status != "failed" || rs[0].reason != "interrupted" {
		t.Fatalf("run %+v, want failed/interrupted", rs[0])
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
	// The sweeper records the teardown just after removing the directory.
	var state string
	drilltest.WaitFor(t, 10*time.Second, "the target recorded as destroyed", func() bool {
		_ = db.QueryRow(context.Background(), "select state from drill_targets").Scan(&state)
		return state == "destroyed"
	})
	t.Logf("recovered %s after the kill", time.Since(killedAt).Round(time.Second))
}

// A drill past its timeout under a worker fails with reason timeout and is torn down.
func TestWorkerTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	drilltest.BigDump(t, b.backups)
	// 1.5M rows and an index take longer than a second to restore
	// anywhere; the cluster, from a template, may take a fraction of one.
	rewriteConfig(t, b, "    timeout: 5m\n", "    timeout: 1s\n")
	start(t, b.env, "worker")
	if r := drill(t, b.env, "run", "shop", "--enqueue"); r.code != 0 {
		t.Fatalf("enqueue: %d %s", r.code, r.stderr)
	}
	db := stateDB(t, b.env)
	drilltest.WaitFor(t, 2*time.Minute, "the run to end", func() bool {
		rs := runs(t, db)
		return len(rs) == 1 && rs[0].finished != nil
	})
	if rs := runs(t, db); rs[0].status != "failed" || rs[0].reason != "timeout" {
		t.Fatalf("run %+v, want failed/timeout", rs[0])
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

// SIGTERM: the worker stops taking drills, gives the running one the grace
// period, then interrupts it; it is torn down and the worker exits 0.
func TestWorkerSIGTERM(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	drilltest.BigDump(t, b.backups)
	w := start(t, b.env, "worker", "--shutdown-grace", "1s")
	if r := drill(t, b.env, "run", "shop", "--enqueue"); r.code != 0 {
		t.Fatalf("enqueue: %d %s", r.code, r.stderr)
	}
	db := stateDB(t, b.env)
	drilltest.WaitFor(t, time.Minute, "the restore to start", func() bool { return restoreStarted(t, db) })
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := w.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("worker exit %d\n%s", code, tail(w.log(), 3000))
	}
	rs := runs(t, db)
	if len(rs) != 1 || rs[0].status != "failed" || rs[0].reason != "interrupted" {
		t.Fatalf("runs %+v, want one failed/interrupted", rs)
	}
	if !strings.Contains(w.log(), "grace period over") {
		t.Errorf("the worker did not report interrupting the drill")
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

// hook records webhook deliveries; fail makes the first n deliveries fail.
type hook struct {
	mu     sync.Mutex
	bodies []map[string]any
	tries  int
	fail   int
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tries++
	if h.tries <= h.fail {
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	h.bodies = append(h.bodies, m)
}

func (h *hook) snapshot() (int, []map[string]any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tries, append([]map[string]any(nil), h.bodies...)
}

// A failed drill is posted to every webhook; a webhook that fails is
// retried with backoff; one that never works does not change the drill.
func TestWebhooksOnFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, 1_000_000) // the row count check fails
	drilltest.DumpAs(t, drilltest.Shop(t), "custom", filepath.Join(b.backups, "shop.dump"))
	ok, flaky, broken := &hook{}, &hook{fail: 1}, &hook{fail: 1 << 30}
	var urls []string
	for _, h := range []*hook{ok, flaky, broken} {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	rewriteConfig(t, b, "    objectives:", fmt.Sprintf("    notify:\n      - webhook: %s\n      - webhook: %s\n      - webhook: %s/hooks/x\n    objectives:", urls[0], urls[1], urls[2]))
	start(t, b.env, "worker")
	if r := drill(t, b.env, "run", "shop", "--enqueue"); r.code != 0 {
		t.Fatalf("enqueue: %d %s", r.code, r.stderr)
	}
	drilltest.WaitFor(t, time.Minute, "delivery to the working and the flaky webhook, and a retry of the broken one", func() bool {
		_, a := ok.snapshot()
		_, f := flaky.snapshot()
		tries, _ := broken.snapshot()
		return len(a) == 1 && len(f) == 1 && tries >= 2
	})
	_, got := ok.snapshot()
	text, _ := got[0]["text"].(string)
	run, _ := got[0]["run"].(map[string]any)
	if got[0]["event"] != "drill_failed" || got[0]["drill"] != "shop" || !strings.Contains(text, "failed") || run == nil || run["reason"] != "check_failed" {
		t.Fatalf("payload %v", got[0])
	}
	db := stateDB(t, b.env)
	rs := runs(t, db)
	if len(rs) != 1 || rs[0].status != "failed" || rs[0].reason != "check_failed" {
		t.Fatalf("the drill's record changed: %+v", rs)
	}
	for _, u := range urls {
		if w := drill(t, b.env, "show", fmt.Sprint(rs[0].id), "--json"); strings.Contains(w.stdout, u) {
			t.Fatalf("a webhook URL appears in the run record")
		}
	}
	var args string
	_ = db.QueryRow(context.Background(), "select string_agg(args::text, ' ') from river_job").Scan(&args)
	if strings.Contains(args, "127.0.0.1") {
		t.Fatalf("a webhook URL is stored in job arguments: %s", args)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// A queued run carries out the policy it recorded, even when drill.yaml is
// edited before a worker picks it up: the record is always what ran.
func TestQueuedRunExecutesItsRecordedPolicy(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	drilltest.DumpAs(t, drilltest.Shop(t), "custom", filepath.Join(b.backups, "shop.dump"))
	r := drill(t, b.env, "run", "shop", "--enqueue", "--json")
	var queued map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &queued); r.code != 0 || err != nil {
		t.Fatalf("enqueue: exit %d %v %s", r.code, err, r.stderr)
	}
	// the edit: a check that cannot pass, and an objective it would miss
	cfg := readFile(t, b.config)
	edited := strings.Replace(cfg, "    checks:\n", "    checks:\n      - type: sql\n        name: added-after-enqueue\n        query: select 1\n        expect: \"2\"\n", 1)
	edited = strings.Replace(edited, "rto: 10m", "rto: 1ms", 1)
	if edited == cfg {
		t.Fatal("the config edit changed nothing")
	}
	if err := os.WriteFile(b.config, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, b.env, "worker")
	db := stateDB(t, b.env)
	drilltest.WaitFor(t, time.Minute, "the queued run to finish", func() bool {
		rs := runs(t, db)
		return len(rs) == 1 && (rs[0].status == "passed" || rs[0].status == "failed")
	})
	s := drill(t, b.env, "show", fmt.Sprint(queued["id"]), "--json")
	var run map[string]any
	if err := json.Unmarshal([]byte(s.stdout), &run); err != nil {
		t.Fatal(err)
	}
	if run["status"] != "passed" {
		t.Fatalf("the run did not carry out its recorded policy: %v %v %v", run["status"], run["reason"], run["error"])
	}
	var names []string
	for _, c := range run["checks"].([]any) {
		names = append(names, c.(map[string]any)["name"].(string))
	}
	if len(names) != 4 || slices.Contains(names, "added-after-enqueue") {
		t.Errorf("checks that ran: %v, want the 4 recorded at enqueue", names)
	}
	if obj := run["objectives"].(map[string]any); obj["rto_seconds"] != 600.0 {
		t.Errorf("objectives %v, want the recorded rto of 10m", obj)
	}
	if run["integrity"] != "chained" {
		t.Errorf("integrity %v: the sealed record differs from the run", run["integrity"])
	}
}

// A queued run whose job is gone (deleted in River UI, a lost insert) no
// longer blocks its drill: the sweep before the next run ends it as lost.
func TestQueuedRunWithoutJobIsLost(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	drilltest.DumpAs(t, drilltest.Shop(t), "custom", filepath.Join(b.backups, "shop.dump"))
	if r := drill(t, b.env, "run", "shop", "--enqueue"); r.code != 0 {
		t.Fatalf("enqueue: %d %s", r.code, r.stderr)
	}
	db := stateDB(t, b.env)
	ctx := context.Background()
	if _, err := db.Exec(ctx, "delete from river_job where kind = 'drill_run'"); err != nil {
		t.Fatal(err)
	}
	// past the grace a just-enqueued run has
	if _, err := db.Exec(ctx, "update drill_runs set created_at = created_at - interval '2 minutes'"); err != nil {
		t.Fatal(err)
	}
	if r := drill(t, b.env, "run", "shop"); r.code != 0 {
		t.Fatalf("run after the lost one: exit %d\n%s", r.code, r.stderr)
	}
	rs := runs(t, db)
	if len(rs) != 2 || rs[0].status != "failed" || rs[0].reason != "lost" || rs[1].status != "passed" {
		t.Fatalf("runs %+v", rs)
	}
}
