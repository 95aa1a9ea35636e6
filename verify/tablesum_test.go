package verify_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"drill/drills/drilltest"
	"drill/verify"

	"github.com/jackc/pgx/v5"
)

// measureAll measures every user table after applying settings to the session.
func measureAll(t *testing.T, url, settings string) map[string]verify.Measure {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, settings); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	tables, err := verify.UserTables(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := verify.MeasureTables(ctx, []pgx.Tx{tx}, tables, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]verify.Measure{}
	for _, m := range ms {
		if m.Err != nil {
			t.Fatalf("%s: %v", m.Table, m.Err)
		}
		out[m.Table.String()] = m
	}
	return out
}

// A database and its restored copy give the same row counts, checksums and
// schema digests for every exotic column type, whatever the session
// settings on either side; a changed row or column changes them.
func TestFingerprintSurvivesDumpAndRestore(t *testing.T) {
	t.Parallel()
	src := drilltest.Exotic(t)
	before := measureAll(t, src, `set timezone = 'Asia/Kolkata'; set datestyle = 'SQL, DMY'; set extra_float_digits = 0;
		set intervalstyle = 'iso_8601'; set search_path = "Mixed Case", public; set bytea_output = 'escape';
		set lc_monetary = 'C.utf8'`)

	dump := filepath.Join(t.TempDir(), "exotic.dump")
	cmd := exec.Command(drilltest.Binaries(t).Path("pg_dump"), "-Fc", "-f", dump, "--dbname", src)
	cmd.Env = append(cmd.Environ(), "PGTZ=Asia/Kolkata", "PGDATESTYLE=German")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v: %s", err, out)
	}
	dst := drilltest.NewDatabase(t)
	restore := exec.Command(drilltest.Binaries(t).Path("pg_restore"), "--no-owner", "-d", dst, dump)
	if out, err := restore.CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v: %s", err, out)
	}
	after := measureAll(t, dst, `set timezone = 'UTC'; set datestyle = 'ISO, MDY'; set extra_float_digits = 3`)

	wantNames := []string{`"Mixed Case"."Order Lines"`, "public.kinds", "public.nopk", "public.nopk_ref", "public.orders", "public.parts"}
	if len(before) != len(wantNames) {
		t.Fatalf("tables = %v, want %v (partitions as a whole)", keys(before), wantNames)
	}
	for _, name := range wantNames {
		b, a := before[name], after[name]
		if b.Sum != a.Sum || b.SchemaSHA256 != a.SchemaSHA256 || b.SchemaSHA256 == "" {
			t.Errorf("%s: before %+v %s, after %+v %s", name, b.Sum, b.SchemaSHA256, a.Sum, a.SchemaSHA256)
		}
	}
	if before["public.parts"].Sum.Rows != 300 || before["public.kinds"].Sum.Rows != 50 {
		t.Fatalf("row counts: %+v", before)
	}

	// Sensitive: one value, one column type, one index.
	drilltest.Exec(t, dst, `update kinds set e = 'happy' where e = 'sad' and ctid = (select min(ctid) from kinds where e = 'sad')`)
	drilltest.Exec(t, dst, `alter table nopk alter column b type varchar(10)`, `create index on orders (customer)`)
	changed := measureAll(t, dst, "select 1")
	if changed["public.kinds"].Sum == after["public.kinds"].Sum {
		t.Error("kinds: checksum unchanged after an enum value changed")
	}
	if changed["public.nopk"].SchemaSHA256 == after["public.nopk"].SchemaSHA256 {
		t.Error("nopk: schema digest unchanged after a column type changed")
	}
	if changed["public.orders"].SchemaSHA256 == after["public.orders"].SchemaSHA256 {
		t.Error("orders: schema digest unchanged after an index was added")
	}
}

func keys(m map[string]verify.Measure) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestReadFingerprintRejectsBadFiles(t *testing.T) {
	t.Parallel()
	good := `{"version":1,"database":"shop","server_version":"15","snapshot_taken_at":"2026-11-01T03:00:00Z",
		"dump":{"format":"custom","sha256":"` + strings.Repeat("a", 64) + `","size_bytes":10},"schema_sha256":"` + strings.Repeat("b", 64) + `",
		"tables":[{"name":"public.orders","rows":3,"checksum":"00000000000000ff","schema_sha256":"` + strings.Repeat("c", 64) + `"}]}`
	if _, err := verify.ReadFingerprint(strings.NewReader(good)); err != nil {
		t.Fatalf("good file: %v", err)
	}
	for name, bad := range map[string]string{
		"version":  strings.Replace(good, `"version":1`, `"version":2`, 1),
		"checksum": strings.Replace(good, `00000000000000ff`, `ff`, 1),
		"rows":     strings.Replace(good, `"rows":3`, `"rows":-1`, 1),
		"name":     strings.Replace(good, `public.orders`, `a.b.c`, 1),
		"sha":      strings.Replace(good, strings.Repeat("a", 64), "zz", 1),
		"json":     good[:40],
	} {
		if _, err := verify.ReadFingerprint(strings.NewReader(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
