package evidence_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"drill/drills"
	"drill/drills/drilltest"
	"drill/drills/evidence"
	"drill/drills/statedb"
)

func TestMain(m *testing.M) { os.Exit(drilltest.Main(m)) }

type bundle struct {
	store *statedb.Store
	key   ed25519.PrivateKey
	pub   ed25519.PublicKey
	dir   string
}

func setup(t *testing.T) bundle {
	t.Helper()
	dir := t.TempDir()
	pub, err := evidence.GenerateKey(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := evidence.LoadPrivateKey(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "k")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if loaded, err := evidence.LoadPublicKey(filepath.Join(dir, "k.pub")); err != nil || !loaded.Equal(pub) {
		t.Fatalf("public key file: %v", err)
	}
	if _, err := evidence.GenerateKey(filepath.Join(dir, "k")); err == nil {
		t.Fatal("keygen overwrote an existing key")
	}
	return bundle{store: drilltest.Store(t), key: key, pub: pub, dir: dir}
}

const webhookSecret = "T000/B000/xoxb-very-secret-token"

// addRun records a finished run of drill; its spec has a webhook whose
// URL is a secret.
func (b bundle) addRun(t *testing.T, drill string, started time.Time, passed bool) int64 {
	t.Helper()
	spec := drilltest.SeedSpec(drill)
	spec.Notify = []drills.Notify{{Webhook: "https://hooks.example.com/services/" + webhookSecret}}
	return drilltest.SeedRun(t, b.store, drilltest.SeedOpts{Spec: spec, Started: started, Failed: !passed,
		Error: "1 of 1 checks failed", RTO: 4 * time.Minute, RPO: 3 * time.Hour})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (b bundle) export(t *testing.T, f statedb.SealedFilter) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := evidence.Export(context.Background(), b.store, &buf, evidence.ExportOpts{Filter: f, Key: b.key, Version: "test"}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func verifyBytes(t *testing.T, zipBytes []byte, pub ed25519.PublicKey) *evidence.Report {
	t.Helper()
	rep, err := evidence.Verify(bytes.NewReader(zipBytes), int64(len(zipBytes)), evidence.VerifyOpts{PubKey: pub, UnsignedOK: pub == nil})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func unzip(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	return files
}

func rezip(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w, _ := zw.Create(n)
		_, _ = w.Write(files[n])
	}
	must(t, zw.Close())
	return buf.Bytes()
}

func problems(r *evidence.Report) string { return strings.Join(r.Problems, "\n") }

func TestExportVerifyIntact(t *testing.T) {
	t.Parallel()
	b := setup(t)
	day := time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC)
	ids := []int64{b.addRun(t, "orders", day, true), b.addRun(t, "orders", day.AddDate(0, 3, 0), false), b.addRun(t, "billing", day, true)}
	_, err := b.store.AddSignoff(context.Background(), ids[1], drills.Signoff{Kind: drills.SignoffCorrective, SignedBy: "Dana Lee <dana@example.com>", Note: "Fixed the negative totals in INC-42"})
	must(t, err)
	z := b.export(t, statedb.SealedFilter{})
	rep := verifyBytes(t, z, b.pub)
	if !rep.Intact || !rep.SignatureChecked || rep.Runs != 3 || len(rep.Drills) != 2 {
		t.Fatalf("report %+v\n%s", rep, problems(rep))
	}
	files := unzip(t, z)
	report := string(files["report.html"])
	for _, id := range ids {
		if !strings.Contains(report, fmt.Sprintf("Run %d —", id)) {
			t.Errorf("report.html lacks run %d", id)
		}
	}
	for _, want := range []string{"Dana Lee &lt;dana@example.com&gt;", "Fixed the negative totals", "orders", "billing", "50%", "s3://backups/orders/x.dump"} {
		if !strings.Contains(report, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	if !strings.Contains(string(files[fmt.Sprintf("runs/%d.json", ids[1])]), "INC-42") {
		t.Error("the sign-off is not in the run file")
	}
	if n := strings.Count(string(files["runs.csv"]), "\n"); n != 4 {
		t.Errorf("runs.csv has %d lines, want a header and 3 rows", n)
	}
	// Secrets never appear in a bundle.
	for name, content := range files {
		if bytes.Contains(content, []byte(webhookSecret)) || bytes.Contains(content, []byte("hooks.example.com")) {
			t.Errorf("%s contains the webhook URL", name)
		}
	}
}

func TestVerifyNamesEveryTamperedFile(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.addRun(t, "orders", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), true)
	z := b.export(t, statedb.SealedFilter{})
	for name := range unzip(t, z) {
		t.Run(name, func(t *testing.T) {
			files := unzip(t, z)
			content := files[name]
			i := bytes.LastIndexByte(content[:len(content)-2], '"') // a byte inside the content
			if i < 0 {
				i = len(content) / 2
			}
			content[i-1] ^= 0x01
			rep := verifyBytes(t, rezip(t, files), b.pub)
			if rep.Intact {
				t.Fatalf("changing one byte of %s went unnoticed", name)
			}
			if name != "manifest.json" && name != "manifest.sig" && !strings.Contains(problems(rep), name) {
				t.Fatalf("problems do not name %s:\n%s", name, problems(rep))
			}
			if (name == "manifest.json" || name == "manifest.sig") && !strings.Contains(problems(rep), "manifest.sig") && !strings.Contains(problems(rep), "manifest.json") {
				t.Fatalf("problems do not name the manifest:\n%s", problems(rep))
			}
		})
	}
	// A run file removed, a CSV row removed.
	files := unzip(t, z)
	delete(files, fmt.Sprintf("runs/%d.json", id))
	if rep := verifyBytes(t, rezip(t, files), b.pub); rep.Intact || !strings.Contains(problems(rep), fmt.Sprintf("runs/%d.json: missing", id)) {
		t.Fatalf("removed run file:\n%s", problems(rep))
	}
	files = unzip(t, z)
	lines := strings.SplitAfter(string(files["runs.csv"]), "\n")
	files["runs.csv"] = []byte(lines[0])
	if rep := verifyBytes(t, rezip(t, files), nil); rep.Intact || !strings.Contains(problems(rep), "runs.csv") {
		t.Fatalf("removed CSV row:\n%s", problems(rep))
	}
}

func TestVerifyWrongKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.addRun(t, "orders", time.Now(), true)
	z := b.export(t, statedb.SealedFilter{})
	other, err := evidence.GenerateKey(filepath.Join(b.dir, "other"))
	must(t, err)
	rep := verifyBytes(t, z, other)
	if rep.Intact || !strings.Contains(problems(rep), "signature does not match") {
		t.Fatalf("wrong key: %+v", rep)
	}
	// unsigned bundle with a key given: fails; without a key: intact with a note
	var buf bytes.Buffer
	_, err = evidence.Export(context.Background(), b.store, &buf, evidence.ExportOpts{Version: "test"})
	must(t, err)
	if rep := verifyBytes(t, buf.Bytes(), b.pub); rep.Intact || !strings.Contains(problems(rep), "not signed") {
		t.Fatalf("unsigned with key: %+v", rep)
	}
	if rep := verifyBytes(t, buf.Bytes(), nil); !rep.Intact || len(rep.Notes) == 0 {
		t.Fatalf("unsigned without key: %+v", rep)
	}
}

// A run deleted from the store shows as a gap in the chain of the next export.
func TestVerifyChainGapAfterDeletedRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []int64
	for i := 0; i < 3; i++ {
		ids = append(ids, b.addRun(t, "orders", day.AddDate(0, i, 0), true))
	}
	_, err := b.store.Pool.Exec(context.Background(), "delete from drill_runs where id = $1", ids[1])
	must(t, err)
	rep := verifyBytes(t, b.export(t, statedb.SealedFilter{}), b.pub)
	if rep.Intact || !strings.Contains(problems(rep), fmt.Sprintf("chain is broken before run %d", ids[2])) {
		t.Fatalf("gap not reported:\n%s", problems(rep))
	}
}

// A run edited in the store after it was sealed shows as a broken record.
func TestVerifyEditedRecord(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.addRun(t, "orders", time.Now(), false)
	_, err := b.store.Pool.Exec(context.Background(), `update drill_runs set record = replace(record, '"status":"failed"', '"status":"passed"') where id = $1`, id)
	must(t, err)
	rep := verifyBytes(t, b.export(t, statedb.SealedFilter{}), b.pub)
	if rep.Intact || !strings.Contains(problems(rep), fmt.Sprintf("run %d", id)) || !strings.Contains(problems(rep), "edited") {
		t.Fatalf("edit not reported:\n%s", problems(rep))
	}
}

func TestExportTimeRange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var ids []int64
	for m := 1; m <= 12; m += 3 { // Jan, Apr, Jul, Oct
		ids = append(ids, b.addRun(t, "orders", time.Date(2026, time.Month(m), 1, 3, 0, 0, 0, time.UTC), true))
	}
	z := b.export(t, statedb.SealedFilter{Since: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)})
	rep := verifyBytes(t, z, b.pub)
	if !rep.Intact || rep.Runs != 2 {
		t.Fatalf("range export: %+v\n%s", rep, problems(rep))
	}
	files := unzip(t, z)
	for i, id := range ids {
		_, in := files[fmt.Sprintf("runs/%d.json", id)]
		if want := i == 1 || i == 2; in != want {
			t.Errorf("run %d in bundle = %v, want %v", id, in, want)
		}
	}
}

// A zip with two entries of one name, the first tampered: readers differ on
// which copy they show, so the bundle is not intact.
func TestVerifyRejectsDuplicateNames(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.addRun(t, "orders", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), true)
	files := unzip(t, b.export(t, statedb.SealedFilter{}))
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("runs.csv")
	_, _ = w.Write([]byte("id,drill,status\n1,orders,passed-forged\n"))
	for n, content := range files {
		w, _ := zw.Create(n)
		_, _ = w.Write(content)
	}
	must(t, zw.Close())
	rep := verifyBytes(t, buf.Bytes(), b.pub)
	if rep.Intact || !strings.Contains(problems(rep), "runs.csv: appears more than once") {
		t.Fatalf("duplicate entry went unnoticed: %+v\n%s", rep, problems(rep))
	}
}

// A bundle claiming more than the cap is refused before anything is read.
func TestVerifyCapsTotalSize(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := range 5 {
		// stored entries whose headers claim 250 MiB each: 1.25 GiB in all
		w, err := zw.CreateRaw(&zip.FileHeader{Name: fmt.Sprintf("runs/%d.json", i), Method: zip.Store,
			CompressedSize64: 4, UncompressedSize64: 250 << 20})
		must(t, err)
		_, _ = w.Write([]byte("{}\n\n"))
	}
	must(t, zw.Close())
	rep, err := evidence.Verify(bytes.NewReader(buf.Bytes()), int64(buf.Len()), evidence.VerifyOpts{UnsignedOK: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Intact || !strings.Contains(problems(rep), "more than the 1073741824 bytes (1 GiB) verify reads") {
		t.Fatalf("report %+v", rep)
	}
}

// Without the public key, or without a signature, a bundle is not intact
// unless the auditor says an unchecked signature is acceptable.
func TestVerifyUncheckedSignatureFails(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.addRun(t, "orders", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), true)
	signed := b.export(t, statedb.SealedFilter{})
	stripped := unzip(t, signed)
	delete(stripped, evidence.SignatureFile)
	forged := unzip(t, signed)
	forged[evidence.SignatureFile] = []byte("AAAA")
	for name, z := range map[string][]byte{"signed": signed, "stripped": rezip(t, stripped), "forged": rezip(t, forged)} {
		rep, err := evidence.Verify(bytes.NewReader(z), int64(len(z)), evidence.VerifyOpts{})
		must(t, err)
		if rep.Intact || !strings.Contains(problems(rep), "manifest.sig") || !strings.Contains(problems(rep), "--unsigned-ok") {
			t.Errorf("%s without a key: %+v", name, rep)
		}
		rep, err = evidence.Verify(bytes.NewReader(z), int64(len(z)), evidence.VerifyOpts{UnsignedOK: true})
		must(t, err)
		if !rep.Intact || rep.SignatureChecked || len(rep.Notes) == 0 {
			t.Errorf("%s with --unsigned-ok: %+v", name, rep)
		}
		rep, err = evidence.Verify(bytes.NewReader(z), int64(len(z)), evidence.VerifyOpts{PubKey: b.pub})
		must(t, err)
		if rep.Intact != (name == "signed") {
			t.Errorf("%s with the key: intact %v\n%s", name, rep.Intact, problems(rep))
		}
	}
}

// A bundle unzipped and zipped again by hand — folder entries, a top
// folder, what macOS adds — still verifies, and so does the unzipped
// directory; a changed file in either still fails.
func TestVerifyRezippedByHand(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.addRun(t, "orders", time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC), true)
	files := unzip(t, b.export(t, statedb.SealedFilter{}))
	byHand := map[string][]byte{"evidence/": nil, "evidence/runs/": nil, "__MACOSX/evidence/._report.html": []byte("x")}
	for name, content := range files {
		byHand["evidence/"+name] = content
	}
	byHand["evidence/.DS_Store"] = []byte("junk")
	if rep := verifyBytes(t, rezip(t, byHand), b.pub); !rep.Intact {
		t.Fatalf("re-zipped bundle: %s", problems(rep))
	}
	dir := t.TempDir()
	for name, content := range files {
		must(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, name), content, 0o644))
	}
	rep, err := evidence.VerifyDir(dir, evidence.VerifyOpts{PubKey: b.pub})
	if err != nil || !rep.Intact {
		t.Fatalf("unzipped directory: %v %s", err, problems(rep))
	}
	byHand["evidence/runs.csv"] = append(byHand["evidence/runs.csv"], '\n')
	if rep := verifyBytes(t, rezip(t, byHand), b.pub); rep.Intact || !strings.Contains(problems(rep), "runs.csv: changed") {
		t.Fatalf("a changed file in a re-zipped bundle: %+v", rep)
	}
	must(t, os.WriteFile(filepath.Join(dir, "report.html"), []byte("<p>all good</p>"), 0o644))
	if rep, _ := evidence.VerifyDir(dir, evidence.VerifyOpts{PubKey: b.pub}); rep.Intact {
		t.Fatal("a changed file in the unzipped directory verified")
	}
}

// A kept instance discarded after its run was sealed: the bundle says so
// beside the sealed record (which said kept), and still verifies.
func TestExportSaysWhatBecameOfAKeptInstance(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := drilltest.SeedRun(t, b.store, drilltest.SeedOpts{Spec: drilltest.SeedSpec("orders"), Started: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC),
		RTO: time.Minute, RPO: time.Hour, Kept: true})
	drilltest.Exec(t, b.store.Pool.Config().ConnString(), fmt.Sprintf("update drill_targets set state = 'destroyed', torn_down_at = '2026-03-01T05:00:00Z' where run_id = %d", id))
	z := b.export(t, statedb.SealedFilter{})
	if rep := verifyBytes(t, z, b.pub); !rep.Intact {
		t.Fatalf("a discarded kept instance breaks the bundle:\n%s", problems(rep))
	}
	files := unzip(t, z)
	var rf evidence.RunFile
	must(t, json.Unmarshal(files[fmt.Sprintf("runs/%d.json", id)], &rf))
	if rf.TargetAfterSeal == nil || rf.TargetAfterSeal.State != drills.TargetDestroyed || rf.TargetAfterSeal.TornDownAt == nil {
		t.Fatalf("target_after_seal: %+v", rf.TargetAfterSeal)
	}
	if report := string(files["report.html"]); !strings.Contains(report, "since: destroyed, torn down 2026-03-01T05:00:00Z") {
		t.Error("report.html does not say the kept instance was destroyed since")
	}
}

// The done-when of the evidence: an export for the calendar year shows
// every quarter of a quarterly drill as passed, failed or missing, maps
// the runs to SOC 2 A1.3 and ISO 27001 A.8.13, and names each run's
// backup digest; printed (headless Chromium, --print-to-pdf), its summary
// is the first page and each drill starts a page of its own.
func TestReportCoverageControlsAndPrint(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q := func(month int) time.Time { return time.Date(2026, time.Month(month), 10, 3, 0, 0, 0, time.UTC) }
	b.addRun(t, "orders", q(1), true)    // Q1 passed
	b.addRun(t, "orders", q(5), false)   // Q2 failed
	b.addRun(t, "orders", q(11), true)   // Q4 passed; Q3 has no run
	b.addRun(t, "billing", q(2), true)   // billing: Q1 passed, then nothing
	b.addRun(t, "billing", q(11), false) // Q4 failed: an open failure
	var buf bytes.Buffer
	now := time.Date(2026, 12, 31, 12, 0, 0, 0, time.UTC)
	// a daily drill that never ran: 365 missing days, one line of the summary
	m, err := evidence.Export(context.Background(), b.store, &buf, evidence.ExportOpts{Key: b.key, Version: "test", Now: now,
		Filter:    statedb.SealedFilter{Since: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		Scheduled: []evidence.ScheduledDrill{{Name: "nightly", Schedule: "0 4 * * *"}}})
	must(t, err)
	got, nightly := map[string]string{}, 0
	for _, c := range m.Coverage {
		if c.Drill == "nightly" {
			nightly++
			continue
		}
		got[c.Drill+" "+c.Period] = c.Status
	}
	if nightly < 360 {
		t.Fatalf("coverage of the daily drill: %d periods", nightly)
	}
	want := map[string]string{"orders 2026-Q1": "passed", "orders 2026-Q2": "failed", "orders 2026-Q3": "missing", "orders 2026-Q4": "passed",
		"billing 2026-Q1": "passed", "billing 2026-Q2": "missing", "billing 2026-Q3": "missing", "billing 2026-Q4": "failed"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("coverage %v, want %v", got, want)
	}
	var soc2 *evidence.ControlEvidence
	for i, c := range m.Controls {
		if c.ID == "SOC 2 A1.3" {
			soc2 = &m.Controls[i]
		}
	}
	if soc2 == nil || len(soc2.Runs) != 5 || len(soc2.Passed) != 3 || !strings.Contains(soc2.Asks, "tested") {
		t.Fatalf("controls: %+v", m.Controls)
	}
	files := unzip(t, buf.Bytes())
	if !strings.Contains(string(files["manifest.json"]), `"coverage"`) {
		t.Error("manifest.json has no coverage")
	}
	report := string(files["report.html"])
	for _, s := range []string{"2026-Q3", "ISO 27001 A.8.13", "How to verify this bundle", drills.KeyID(b.pub), "Open failures",
		"2026-01-01 … 2026-12-30 <span class=\"muted\">(364 periods)</span>", "364 missing"} {
		if !strings.Contains(report, s) {
			t.Errorf("report.html lacks %q", s)
		}
	}
	// a failed run meets no objective: the drill's summary says missed,
	// as the run itself does, whatever its worst RPO
	row := func(drill string) string {
		_, summary, _ := strings.Cut(report, "Worst RTO (objective)")
		_, rest, _ := strings.Cut(summary, "<tr><td>"+drill+"</td>")
		row, _, _ := strings.Cut(rest, "</tr>")
		return row
	}
	for _, drill := range []string{"orders", "billing"} {
		if r := row(drill); strings.Count(r, ">MISSED<") != 2 {
			t.Errorf("the objectives summary of %s, with a failed run, does not say MISSED for RTO and RPO: %s", drill, r)
		}
	}
	if strings.Index(report, "2026-Q3") > strings.Index(report, "Objectives") {
		t.Error("the missing periods are not the first thing in the report")
	}

	exe := drilltest.Browser(t)
	pdftotext, err := exec.LookPath("pdftotext")
	if err != nil {
		if os.Getenv("DRILL_REQUIRE_BROWSER") != "" {
			t.Fatal("pdftotext not found (apt-get install poppler-utils) and DRILL_REQUIRE_BROWSER is set")
		}
		t.Skip("pdftotext not found: apt-get install poppler-utils to read the printed report")
	}
	dir := t.TempDir()
	html := filepath.Join(dir, "report.html")
	must(t, os.WriteFile(html, files["report.html"], 0o644))
	pdf := filepath.Join(dir, "report.pdf")
	cmd := exec.Command(exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--print-to-pdf="+pdf, "file://"+html)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium --print-to-pdf: %v: %s", err, out)
	}
	page := func(n int) string {
		out, err := exec.Command(pdftotext, "-f", strconv.Itoa(n), "-l", strconv.Itoa(n), "-layout", pdf, "-").Output()
		must(t, err)
		return string(out)
	}
	info, err := exec.Command(pdftotext, pdf, "-").Output()
	must(t, err)
	pages := strings.Count(string(info), "\f")
	// Summary, controls in detail, then a page (or more) per drill.
	if pages < 4 || pages > 8 {
		t.Fatalf("the printed report has %d pages, want 4 to 8", pages)
	}
	first := page(1)
	for _, s := range []string{"Coverage", "2026-Q3", "missing", "Objectives", "Controls", "How to verify this bundle"} {
		if !strings.Contains(first, s) {
			t.Errorf("page 1 of the printed report lacks %q:\n%s", s, first)
		}
	}
	if strings.Contains(first, "Run 1 —") || !strings.Contains(page(2), "Controls in detail") {
		t.Error("the summary is not a page of its own")
	}
	if !strings.Contains(page(3), "Drill billing") {
		t.Errorf("page 3 does not start drill billing:\n%s", page(3))
	}
}

// A file under logs/ that no sealed record vouches for, and a zip folder
// entry that holds content, are not evidence: verify says so.
func TestVerifyRefusesUnvouchedFiles(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.addRun(t, "orders", time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC), true)
	z := b.export(t, statedb.SealedFilter{})
	files := unzip(t, z)
	files[evidence.LogFileName(id+1000)] = []byte("pg_restore: all tables restored and verified\n")
	if rep := verifyBytes(t, rezip(t, files), b.pub); rep.Intact || !strings.Contains(problems(rep), evidence.LogFileName(id+1000)) {
		t.Fatalf("a smuggled log verified: %s", problems(rep))
	}

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, content := range unzip(t, z) {
		w, _ := zw.Create(name)
		_, _ = w.Write(content)
	}
	// A folder by its mode bits, not by its name: zip tools list it as a
	// folder and hide what it holds.
	content := []byte("restore verified by the auditor")
	h := &zip.FileHeader{Name: "notes", Method: zip.Deflate}
	h.SetMode(fs.ModeDir | 0o755)
	w, err := zw.CreateHeader(h)
	must(t, err)
	_, err = w.Write(content)
	must(t, err)
	must(t, zw.Close())
	if rep := verifyBytes(t, buf.Bytes(), b.pub); rep.Intact || !strings.Contains(problems(rep), "notes") {
		t.Fatalf("a folder entry with content verified: %s", problems(rep))
	}
}
