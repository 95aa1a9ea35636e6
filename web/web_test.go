package web_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"drill/drills"
	"drill/drills/drilltest"
	"drill/drills/evidence"
	"drill/drills/statedb"
	"drill/jobs"
	"drill/web"
)

func TestMain(m *testing.M) { os.Exit(drilltest.Main(m)) }

type bundle struct {
	store  *statedb.Store
	cfg    *drills.Config
	server *httptest.Server
	ids    map[string]int64 // newest run per drill
}

const scriptError = `<script>alert("pwned")</script>`

// setup seeds four drills: orders passed, billing failed (its error holds
// markup), archive overdue, adhoc without objectives or schedule.
func setup(t *testing.T, token string) bundle {
	t.Helper()
	b := bundle{store: drilltest.Store(t), ids: map[string]int64{}}
	orders, billing, archive, adhoc := drilltest.SeedSpec("orders"), drilltest.SeedSpec("billing"), drilltest.SeedSpec("archive"), drilltest.SeedSpec("adhoc")
	archive.Schedule = "daily"
	adhoc.Schedule, adhoc.Objectives = "", drills.Objectives{}
	b.cfg = &drills.Config{Drills: []*drills.Spec{orders, billing, archive, adhoc}, OverdueGrace: 24 * time.Hour}
	now := time.Now()
	for i := 0; i < 3; i++ {
		b.ids["orders"] = drilltest.SeedRun(t, b.store, drilltest.SeedOpts{Spec: orders, Started: now.Add(time.Duration(i-3) * time.Hour), RTO: time.Duration(4+i) * time.Minute, RPO: 3 * time.Hour,
			Dir: "/var/backups/postgresql/ordersproduction"})
	}
	b.ids["billing"] = drilltest.SeedRun(t, b.store, drilltest.SeedOpts{Spec: billing, Started: now.Add(-time.Hour), Failed: true, Error: scriptError, RTO: 5 * time.Minute, RPO: 30 * time.Hour})
	b.ids["archive"] = drilltest.SeedRun(t, b.store, drilltest.SeedOpts{Spec: archive, Started: now.Add(-5 * 24 * time.Hour), RTO: time.Minute, RPO: time.Hour})
	b.ids["adhoc"] = drilltest.SeedRun(t, b.store, drilltest.SeedOpts{Spec: adhoc, Started: now.Add(-2 * time.Hour), RTO: time.Minute, RPO: time.Hour})
	client, err := jobs.NewInsertClient(b.store.Pool)
	if err != nil {
		t.Fatal(err)
	}
	srv := &web.Server{Store: b.store, Config: b.cfg, Token: token, Version: "test",
		Enqueue: func(ctx context.Context, spec *drills.Spec, trigger drills.Trigger, who string) (*drills.Run, error) {
			return jobs.Enqueue(ctx, b.store, client, spec, drills.PolicyOf(spec, "", "test"), trigger, who)
		}}
	b.server = httptest.NewServer(srv.Handler())
	t.Cleanup(b.server.Close)
	return b
}

func get(t *testing.T, c *http.Client, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func TestOverviewOrdersFailingFirstAndEscapes(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	code, body, hdr := get(t, http.DefaultClient, b.server.URL+"/")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	if strings.Contains(body, scriptError) || !strings.Contains(body, "&lt;script&gt;") {
		t.Fatal("the error text with markup is not escaped")
	}
	order := []string{"billing", "archive", "orders"}
	last := -1
	for _, name := range order {
		i := strings.Index(body, `href="/drills/`+name+`"`)
		if i < last {
			t.Fatalf("drills out of order: want failing first, then overdue: %v", order)
		}
		last = i
	}
	if !regexp.MustCompile(`archive</strong></a>\s*<span class="badge overdue">overdue</span>`).MatchString(body) {
		t.Error("archive has no overdue badge")
	}
	if strings.Count(body, "badge overdue") != 1 {
		t.Error("only archive is overdue")
	}
	if !strings.Contains(body, "not scheduled") {
		t.Error("adhoc is not shown as unscheduled")
	}
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "X-Request-Id"} {
		if hdr.Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}
	if !strings.Contains(hdr.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Error("CSP does not forbid framing")
	}
}

func TestDrillRunAndSchedulePages(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	code, body, _ := get(t, http.DefaultClient, b.server.URL+"/drills/orders")
	// Charts scale to the data: 4–6 minutes against a 30-minute objective
	// is not flattened onto the baseline; the objective is noted above.
	if code != 200 || !strings.Contains(body, "<svg class=\"chart\"") || strings.Count(body, "far above every run") != 2 || !strings.Contains(body, "100%") {
		t.Fatalf("drill page: %d, charts/objectives/pass rate missing", code)
	}
	if _, billing, _ := get(t, http.DefaultClient, b.server.URL+"/drills/billing"); !strings.Contains(billing, `class="objective"`) {
		t.Error("an objective within the data's range (RPO 30h against 26h) is not drawn as a line")
	}
	if strings.Count(body, `href="/runs/`) != 3 {
		t.Errorf("history shows %d runs, want 3", strings.Count(body, `href="/runs/`))
	}
	code, body, _ = get(t, http.DefaultClient, b.server.URL+"/drills/adhoc")
	if code != 200 || strings.Contains(body, `class="objective"`) {
		t.Errorf("a drill without objectives draws objective lines")
	}
	code, body, _ = get(t, http.DefaultClient, b.server.URL+"/runs/"+itoa(b.ids["billing"]))
	if code != 200 || !strings.Contains(body, "&lt;script&gt;") || strings.Contains(body, scriptError) {
		t.Fatalf("run page: %d, or unescaped error", code)
	}
	for _, want := range []string{`class="timeline"`, "locate", "teardown", "no negatives", "s3://backups/billing/x.dump", "check_failed", "missed"} {
		if !strings.Contains(body, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
	code, body, _ = get(t, http.DefaultClient, b.server.URL+"/schedule")
	if code != 200 {
		t.Fatalf("schedule %d", code)
	}
	// orders and billing are quarterly: four dates each within the year
	section := body[strings.Index(body, `href="/drills/orders"`):]
	section = section[:strings.Index(section, "</ul>")]
	if n := strings.Count(section, "<li>"); n != 4 {
		t.Errorf("a quarterly drill shows %d upcoming dates, want 4", n)
	}
	for _, p := range []string{"/drills/nope", "/runs/999999", "/runs/abc"} {
		if code, _, _ := get(t, http.DefaultClient, b.server.URL+p); code != 404 {
			t.Errorf("%s: %d, want 404", p, code)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Run now needs the CSRF token of the browser's session.
func TestRunNowCSRF(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	resp, err := http.PostForm(b.server.URL+"/drills/orders/run", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST without a token: %d, want 403", resp.StatusCode)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	_, page, _ := get(t, c, b.server.URL+"/drills/orders")
	m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token in the form")
	}
	resp, err = c.PostForm(b.server.URL+"/drills/orders/run", url.Values{"csrf_token": {m[1] + "x"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST with a wrong token: %d, want 403", resp.StatusCode)
	}
	resp, err = c.PostForm(b.server.URL+"/drills/orders/run", url.Values{"csrf_token": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Request.URL.Path, "/runs/") || !strings.Contains(string(body), "queued") {
		t.Fatalf("POST with the token: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	// a second press while it is queued is refused
	resp, err = c.PostForm(b.server.URL+"/drills/orders/run", url.Values{"csrf_token": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("second press: %d, want 409", resp.StatusCode)
	}
	// a cross-site form post is refused even with a token
	req, _ := http.NewRequest("POST", b.server.URL+"/drills/orders/run", strings.NewReader("csrf_token="+m[1]))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site POST: %d, want 403", resp.StatusCode)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token-for-tests"
	b := setup(t, token)
	for _, p := range []string{"/", "/api/drills", "/metrics", "/runs/1"} {
		if code, _, hdr := get(t, http.DefaultClient, b.server.URL+p); code != 401 || !strings.Contains(hdr.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s without auth: %d", p, code)
		}
	}
	if code, _, _ := get(t, http.DefaultClient, b.server.URL+"/healthz"); code != 200 {
		t.Errorf("/healthz must stay open: %d", code)
	}
	req, _ := http.NewRequest("GET", b.server.URL+"/api/drills", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("bearer: %v %v", err, resp.StatusCode)
	}
	resp.Body.Close()
	req, _ = http.NewRequest("GET", b.server.URL+"/", nil)
	req.SetBasicAuth("anyone", token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("basic: %v %v", err, resp.StatusCode)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), token) {
		t.Fatal("the token is rendered")
	}
	// the API's POST needs the token too, and works with it
	req, _ = http.NewRequest("POST", b.server.URL+"/api/drills/archive/runs", nil)
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("API POST without token: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest("POST", b.server.URL+"/api/drills/archive/runs", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, _ = http.DefaultClient.Do(req)
	var queued map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&queued)
	resp.Body.Close()
	if resp.StatusCode != 201 || queued["status"] != "queued" || queued["drill"] != "archive" {
		t.Fatalf("API POST with token: %d %v", resp.StatusCode, queued)
	}
}

func TestAPIAndMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	_, body, hdr := get(t, http.DefaultClient, b.server.URL+"/api/runs?drill=orders&limit=2")
	var runs []map[string]any
	if err := json.Unmarshal([]byte(body), &runs); err != nil || len(runs) != 2 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("runs: %v %d", err, len(runs))
	}
	for _, key := range []string{"id", "drill", "status", "rto_seconds", "rpo_seconds", "objectives", "backup", "target", "phases", "checks"} {
		if _, ok := runs[0][key]; !ok {
			t.Errorf("run JSON lacks %q", key)
		}
	}
	if runs[0]["id"].(float64) <= runs[1]["id"].(float64) {
		t.Error("runs not newest first")
	}
	if code, _, _ := get(t, http.DefaultClient, b.server.URL+"/api/runs?limit=0"); code != 400 {
		t.Errorf("limit=0: %d", code)
	}
	_, body, _ = get(t, http.DefaultClient, b.server.URL+"/api/drills")
	var ds []map[string]any
	if err := json.Unmarshal([]byte(body), &ds); err != nil || len(ds) != 4 {
		t.Fatalf("drills: %v %s", err, body)
	}
	_, body, _ = get(t, http.DefaultClient, b.server.URL+"/metrics")
	for _, want := range []string{
		`drill_overdue{drill="archive"} 1`,
		`drill_overdue{drill="orders"} 0`,
		`drill_runs_total{drill="orders",status="passed"} 3`,
		`drill_objective_met{drill="billing",objective="rpo"} 0`,
		`drill_objective_met{drill="orders",objective="rto"} 1`,
		`drill_last_run_timestamp_seconds{drill="billing",status="failed"}`,
		`drill_last_success_timestamp_seconds{drill="orders"}`,
		`drill_rto_seconds{drill="orders"} 360`,
		`drill_rpo_seconds{drill="orders"} 10800`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	code, _, hdr := get(t, http.DefaultClient, b.server.URL+"/evidence.zip?drill=orders")
	if code != 200 || hdr.Get("Content-Type") != "application/zip" {
		t.Errorf("evidence download: %d %s", code, hdr.Get("Content-Type"))
	}
	// a run queued through the API is in /api/runs at once, though the
	// list was just served from the cache
	resp, err := http.Post(b.server.URL+"/api/drills/orders/runs", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var queued map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&queued)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/drills/orders/runs: %d %v", resp.StatusCode, queued)
	}
	_, body, _ = get(t, http.DefaultClient, b.server.URL+"/api/runs?drill=orders&limit=2")
	if err := json.Unmarshal([]byte(body), &runs); err != nil || len(runs) == 0 || runs[0]["id"] != queued["id"] {
		t.Errorf("the queued run %v is not first in /api/runs: %s", queued["id"], body)
	}
}

// Without a token, a request naming another host (DNS rebinding: a site
// whose name resolves to 127.0.0.1) is refused, whatever its Origin.
func TestNoTokenRefusesForeignHost(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	port := b.server.URL[strings.LastIndex(b.server.URL, ":")+1:]
	for _, host := range []string{"evil.example:" + port, "evil.example", "127.0.0.1.evil.example:" + port, "10.0.0.1:" + port} {
		for _, req := range []*http.Request{
			mustRequest(t, "GET", b.server.URL+"/", ""),
			mustRequest(t, "GET", b.server.URL+"/api/runs", ""),
			mustRequest(t, "POST", b.server.URL+"/api/drills/archive/runs", ""),
		} {
			req.Host = host
			req.Header.Set("Origin", "http://"+host)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMisdirectedRequest {
				t.Errorf("%s %s with Host %s: %d, want 421", req.Method, req.URL.Path, host, resp.StatusCode)
			}
		}
	}
	for _, host := range []string{"localhost:" + port, "127.0.0.1:" + port, "[::1]:" + port, "LOCALHOST:" + port} {
		req := mustRequest(t, "GET", b.server.URL+"/api/drills", "")
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("Host %s: %d, want 200", host, resp.StatusCode)
		}
	}
	if !web.LoopbackHost("localhost.") || web.LoopbackHost("localhost.evil.example") {
		t.Error("LoopbackHost")
	}
}

func mustRequest(t *testing.T, method, u, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// The drill name of an evidence download becomes part of a header: a name
// that breaks out of it is refused.
func TestEvidenceDrillNameValidated(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	for _, name := range []string{`x"; filename="evil.exe`, "a\r\nSet-Cookie: x=1", "../etc", "Orders"} {
		code, _, hdr := get(t, http.DefaultClient, b.server.URL+"/evidence.zip?drill="+url.QueryEscape(name))
		if code != http.StatusBadRequest || hdr.Get("Content-Disposition") != "" {
			t.Errorf("drill=%q: %d %q, want 400", name, code, hdr.Get("Content-Disposition"))
		}
	}
	code, _, hdr := get(t, http.DefaultClient, b.server.URL+"/evidence.zip?drill=orders")
	if code != 200 || !strings.Contains(hdr.Get("Content-Disposition"), `filename="drill-evidence-orders-`) {
		t.Errorf("drill=orders: %d %q", code, hdr.Get("Content-Disposition"))
	}
}

// A sealed run whose row was changed afterwards is shown as altered on its
// page, in the API and in metrics.
func TestAlteredRunShown(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	id := b.ids["billing"]
	if _, page, _ := get(t, http.DefaultClient, fmt.Sprintf("%s/runs/%d", b.server.URL, id)); strings.Contains(page, "Integrity: altered") || !strings.Contains(page, "chained") {
		t.Fatalf("an untouched run is shown as altered, or its record state is missing")
	}
	if _, err := b.store.Pool.Exec(context.Background(), "update drill_runs set status = 'passed', reason = null, error = null where id = $1", id); err != nil {
		t.Fatal(err)
	}
	_, page, _ := get(t, http.DefaultClient, fmt.Sprintf("%s/runs/%d", b.server.URL, id))
	if !strings.Contains(page, "Integrity: altered") || !strings.Contains(page, "columns differ from the run&#39;s sealed record") {
		t.Errorf("the run page does not flag the altered run")
	}
	_, body, _ := get(t, http.DefaultClient, fmt.Sprintf("%s/api/runs/%d", b.server.URL, id))
	var run map[string]any
	if err := json.Unmarshal([]byte(body), &run); err != nil || run["integrity"] != "altered" {
		t.Errorf("API: integrity %v (%v)", run["integrity"], err)
	}
	_, metrics, _ := get(t, http.DefaultClient, b.server.URL+"/metrics")
	if !strings.Contains(metrics, `drill_last_run_altered{drill="billing"} 1`) || !strings.Contains(metrics, `drill_last_run_altered{drill="orders"} 0`) {
		t.Errorf("metrics do not flag the altered run:\n%s", grepLines(metrics, "altered"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Metrics of a drill stay while a run of it is queued; counters count
// finished runs only, so they never go down.
func TestMetricsSteadyWhileQueued(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	resp, err := http.Post(b.server.URL+"/api/drills/orders/runs", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("enqueue: %d", resp.StatusCode)
	}
	_, metrics, _ := get(t, http.DefaultClient, b.server.URL+"/metrics")
	for _, want := range []string{`drill_last_run_timestamp_seconds{drill="orders",status="passed"}`, `drill_rto_seconds{drill="orders"}`,
		`drill_runs_total{drill="orders",status="passed"} 3`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s while a run is queued:\n%s", want, grepLines(metrics, "orders"))
		}
	}
	if strings.Contains(metrics, `status="queued"`) {
		t.Errorf("a counter counts queued runs:\n%s", grepLines(metrics, "queued"))
	}
}

// A target torn down after its run was sealed (a kept instance discarded, a
// failed teardown finished by the sweeper) does not make the run altered.
func TestLaterTeardownIsNotAlteration(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	id := b.ids["adhoc"]
	if _, err := b.store.Pool.Exec(context.Background(), `update drill_targets set state = 'destroyed', torn_down_at = now(),
		details = '{"port": "1"}' where run_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	run, err := b.store.Run(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if run.Seal == nil || run.Seal.Integrity != drills.IntegrityChained {
		t.Fatalf("integrity %+v", run.Seal)
	}
}

// Without an evidence key the download says it is unsigned.
func TestEvidenceButtonSaysUnsigned(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	_, page, _ := get(t, http.DefaultClient, b.server.URL+"/drills/orders")
	if !strings.Contains(page, "Evidence bundle (unsigned)") {
		t.Error("the evidence button does not say the bundle is unsigned")
	}
}

// A sign-off shows on the run page with the signer's name.
func TestRunPageShowsSignoffs(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	id := b.ids["orders"]
	if _, err := b.store.AddSignoff(context.Background(), id, drills.Signoff{Kind: drills.SignoffReview, SignedBy: "Dana Lee", Note: "Q4 drill reviewed"}); err != nil {
		t.Fatal(err)
	}
	_, page, _ := get(t, http.DefaultClient, fmt.Sprintf("%s/runs/%d", b.server.URL, id))
	if !strings.Contains(page, "Q4 drill reviewed") || !strings.Contains(page, "Dana Lee") {
		t.Error("the run page does not show the sign-off")
	}
	if run, err := b.store.Run(context.Background(), id); err != nil || run.Seal.Integrity != drills.IntegrityChained {
		t.Errorf("a sign-off changed the run's integrity: %v %+v", err, run.Seal)
	}
}

// A run started from the page or the API records the person: the user of
// a trusted proxy's header when drill serve is told to trust one, else the
// basic-auth user name.
func TestRunsRecordThePerson(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	client, err := jobs.NewInsertClient(b.store.Pool)
	if err != nil {
		t.Fatal(err)
	}
	var who []string
	var mu sync.Mutex
	for _, tc := range []struct {
		header, token string
	}{{"X-Forwarded-User", ""}, {"", "s3cret-token-for-tests"}} {
		srv := &web.Server{Store: b.store, Config: b.cfg, Token: tc.token, TrustedUserHeader: tc.header, Version: "test",
			Enqueue: func(ctx context.Context, spec *drills.Spec, trigger drills.Trigger, by string) (*drills.Run, error) {
				mu.Lock()
				who = append(who, by)
				mu.Unlock()
				return jobs.Enqueue(ctx, b.store, client, spec, drills.PolicyOf(spec, "", "test"), trigger, by)
			}}
		ts := httptest.NewServer(srv.Handler())
		req, _ := http.NewRequest("POST", ts.URL+"/api/drills/adhoc/runs", nil)
		if tc.header != "" {
			req.Header.Set(tc.header, "dana@example.com")
		} else {
			req.SetBasicAuth("dana", tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ts.Close()
		if _, err := b.store.Pool.Exec(context.Background(), "update drill_runs set status = 'failed', finished_at = now() where finished_at is null"); err != nil {
			t.Fatal(err)
		}
	}
	if len(who) != 2 || who[0] != "dana@example.com" || who[1] != "dana (api)" {
		t.Fatalf("recorded %q", who)
	}
}

// A sign-off made on the run page (CSRF-protected like Run now) shows on
// the page and goes into the evidence bundle with the signer's name: the
// basic-auth user when there is one, else the name typed, marked as typed.
func TestSignoffForm(t *testing.T) {
	t.Parallel()
	b := setup(t, "s3cret")
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	id := b.ids["orders"]
	runURL := fmt.Sprintf("%s/runs/%d", b.server.URL, id)
	authed := func(method, u string, form url.Values) (int, string) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, u, body)
		req.SetBasicAuth("Dana Lee", "s3cret")
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	_, page := authed("GET", runURL, nil)
	if !strings.Contains(page, "signing as <strong>Dana Lee</strong>") || strings.Contains(page, `name="by"`) {
		t.Fatalf("the form does not sign as the basic-auth user:\n%s", page)
	}
	m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token in the sign-off form")
	}
	if code, _ := authed("POST", runURL+"/signoff", url.Values{"kind": {"review"}, "note": {"looked fine"}}); code != http.StatusForbidden {
		t.Fatalf("sign-off without a CSRF token: %d, want 403", code)
	}
	if code, _ := authed("POST", runURL+"/signoff", url.Values{"csrf_token": {m[1]}, "kind": {"review"}, "note": {" "}}); code != http.StatusBadRequest {
		t.Fatalf("sign-off without a note: %d, want 400", code)
	}
	code, page := authed("POST", runURL+"/signoff", url.Values{"csrf_token": {m[1]}, "kind": {"review"}, "note": {"Q3 drill reviewed <ok>"}, "by": {"Mallory"}})
	if code != http.StatusOK || !strings.Contains(page, "Q3 drill reviewed &lt;ok&gt;") || !strings.Contains(page, "Dana Lee") || strings.Contains(page, "Mallory") {
		t.Fatalf("after signing off: %d\n%s", code, page)
	}
	run, err := b.store.Run(context.Background(), id)
	if err != nil || len(run.Signoffs) != 1 || run.Signoffs[0].SignedBy != "Dana Lee (basic-auth user name, not verified: the token is shared)" {
		t.Fatalf("recorded sign-offs: %+v %v", run.Signoffs, err)
	}
	var buf bytes.Buffer
	if _, err := evidence.Export(context.Background(), b.store, &buf, evidence.ExportOpts{Version: "test"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(unzipAll(t, buf.Bytes()), "Dana Lee") {
		t.Error("the sign-off is not in the evidence bundle")
	}
}

func unzipAll(t *testing.T, b []byte) string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, f := range zr.File {
		rc, _ := f.Open()
		data, _ := io.ReadAll(rc)
		rc.Close()
		all.Write(data)
	}
	return all.String()
}

// A run in progress reloads itself (no JavaScript); the overview says
// when scheduled drills exist but no worker has been seen.
func TestLiveRunPageAndWorkerNote(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	_, page, _ := get(t, c, b.server.URL+"/")
	if !strings.Contains(page, "No worker has been seen") {
		t.Errorf("the overview does not say no worker runs the scheduled drills")
	}
	_, page, _ = get(t, c, fmt.Sprintf("%s/runs/%d", b.server.URL, b.ids["orders"]))
	if strings.Contains(page, `http-equiv="refresh"`) {
		t.Error("a finished run's page reloads itself")
	}
	if !strings.Contains(page, "<summary>SQL</summary><code>select count(*) from orders where total &lt; 0</code>") {
		t.Errorf("the run page does not show the check's SQL")
	}
	resp, err := c.PostForm(b.server.URL+"/drills/adhoc/run", url.Values{"csrf_token": {csrfOf(t, c, b.server.URL+"/drills/adhoc")}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`<meta http-equiv="refresh" content="5">`, "No check has finished yet", "Queued — waiting for a worker", "not located yet", "not created yet"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("a queued run's page lacks %q:\n%s", want, body)
		}
	}
	// The latest progress line of a run in progress shows on its page while
	// it belongs to the phase under way; then the next phase does.
	var id int64
	if _, err := fmt.Sscanf(resp.Request.URL.Path, "/runs/%d", &id); err != nil {
		t.Fatalf("redirected to %s", resp.Request.URL.Path)
	}
	ctx, start := context.Background(), time.Now().Add(-time.Minute)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.store.StartRun(ctx, id, start, start.Add(time.Hour), drills.Executor{Worker: "test"}))
	must(b.store.StartPhase(ctx, id, 1, drills.PhaseRestore, start))
	must(b.store.SetProgress(ctx, id, "restore: processing data for table public.orders — item 3 of 9 (33%)", start.Add(time.Second)))
	if _, page, _ := get(t, c, resp.Request.URL.String()); !strings.Contains(page, "Now: <code>restore: processing data for table public.orders — item 3 of 9 (33%)</code>") {
		t.Errorf("the run page does not show the run's progress")
	}
	must(b.store.FinishPhase(ctx, id, 1, start.Add(2*time.Second), ""))
	must(b.store.StartPhase(ctx, id, 2, drills.PhaseVerify, start.Add(2*time.Second)))
	if _, page, _ := get(t, c, resp.Request.URL.String()); !strings.Contains(page, "Now: <code>verify under way</code>") {
		t.Errorf("the run page shows the restore's last line while verify runs")
	}
}

// A kept instance's run page says until when it is kept and how to
// discard it sooner.
func TestRunPageSaysKeptUntil(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	started := time.Date(2026, 11, 2, 3, 0, 0, 0, time.UTC)
	id := drilltest.SeedRun(t, b.store, drilltest.SeedOpts{Spec: drilltest.SeedSpec("orders"), Started: started, RTO: time.Minute, RPO: time.Hour, Kept: true})
	_, page, _ := get(t, http.DefaultClient, fmt.Sprintf("%s/runs/%d", b.server.URL, id))
	for _, want := range []string{"kept until 2026-11-02T04:01:00Z", fmt.Sprintf("<code>drill discard %d</code>", id)} {
		if !strings.Contains(page, want) {
			t.Errorf("the run page of a kept instance lacks %q", want)
		}
	}
}

func csrfOf(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	_, page, _ := get(t, c, u)
	m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on %s", u)
	}
	return m[1]
}

// Pages that are the same for everyone are served from a one-second cache,
// which never hands one browser's session cookie to another.
func TestMicrocacheSharesNoSession(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	for range 2 {
		resp, err := http.Get(b.server.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if c := resp.Header.Get("Set-Cookie"); c != "" {
			t.Fatalf("the overview set a cookie: %s", c)
		}
	}
	// The drill page's history is rendered once a second for everyone;
	// each viewer's form still carries the token of their own session.
	var tokens []string
	for range 2 {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		_, page, _ := get(t, c, b.server.URL+"/drills/orders")
		if strings.Contains(page, "placeholder") {
			t.Fatalf("the drill page shows the token's placeholder:\n%s", page)
		}
		token := csrfOf(t, c, b.server.URL+"/drills/orders")
		resp, err := c.PostForm(b.server.URL+"/drills/orders/run", url.Values{"csrf_token": {token}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusConflict { // the second viewer finds it queued
			t.Fatalf("Run now with the page's token: %d", resp.StatusCode)
		}
		tokens = append(tokens, token)
	}
	if tokens[0] == tokens[1] {
		t.Fatal("two browsers got the same CSRF token from the cached drill page")
	}
}

// The page of a run whose drill was removed from the config names the
// drill without a link to a page that no longer exists.
func TestRunOfRetiredDrill(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	id := drilltest.SeedRun(t, b.store, drilltest.SeedOpts{Spec: drilltest.SeedSpec("retired"), Started: time.Now().Add(-time.Hour), RTO: time.Minute, RPO: time.Hour})
	code, page, _ := get(t, http.DefaultClient, fmt.Sprintf("%s/runs/%d", b.server.URL, id))
	if code != 200 || strings.Contains(page, `href="/drills/retired"`) || !strings.Contains(page, "no longer in the config") {
		t.Errorf("run of a retired drill: %d\n%s", code, page)
	}
	if _, page, _ := get(t, http.DefaultClient, fmt.Sprintf("%s/runs/%d", b.server.URL, b.ids["orders"])); !strings.Contains(page, `href="/drills/orders"`) {
		t.Error("the run page of a configured drill lost its link")
	}
}
