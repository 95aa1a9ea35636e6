package verify_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"drill/drills/drilltest"
	"drill/verify"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(drilltest.Main(m)) }

type bundle struct {
	url  string
	conn *pgx.Conn
}

func setup(t *testing.T, sql ...string) bundle {
	t.Helper()
	url := drilltest.NewDatabase(t)
	drilltest.Exec(t, url, sql...)
	conn, err := verify.Connect(context.Background(), url, verify.Opts{StatementTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return bundle{url: url, conn: conn}
}

func i64(n int64) *int64   { return &n }
func str(s string) *string { return &s }
func run(t *testing.T, b bundle, c verify.Check, opts verify.Opts) verify.Result {
	t.Helper()
	return verify.RunOne(context.Background(), b.conn, c, opts)
}

func TestRowCount(t *testing.T) {
	t.Parallel()
	b := setup(t, "create table orders (id int)", "insert into orders select generate_series(1, 5)")
	cases := []struct {
		name    string
		check   verify.Check
		pass    bool
		errPart string
	}{
		{"min met", verify.Check{Table: "public.orders", Min: i64(1)}, true, ""},
		{"min missed", verify.Check{Table: "orders", Min: i64(6)}, false, ""},
		{"equals", verify.Check{Table: "orders", Equals: i64(5)}, true, ""},
		{"equals missed", verify.Check{Table: "orders", Equals: i64(4)}, false, ""},
		{"max missed", verify.Check{Table: "orders", Max: i64(4)}, false, ""},
		{"between", verify.Check{Table: "orders", Min: i64(5), Max: i64(5)}, true, ""},
		{"upper case unquoted folds", verify.Check{Table: "PUBLIC.Orders", Min: i64(1)}, true, ""},
		{"missing table", verify.Check{Table: "public.nope", Min: i64(0)}, false, "does not exist"},
		{"no bounds is invalid", verify.Check{Table: "orders"}, false, "needs min, max or equals"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.check.Type = verify.TypeRowCount
			r := run(t, b, tc.check, verify.Opts{})
			if r.Passed != tc.pass {
				t.Fatalf("passed = %v, want %v (%+v)", r.Passed, tc.pass, r)
			}
			if tc.errPart == "" && r.Error != "" || !strings.Contains(r.Error, tc.errPart) {
				t.Fatalf("error = %q, want it to contain %q", r.Error, tc.errPart)
			}
			if tc.errPart == "" && r.Actual != "5" {
				t.Fatalf("actual = %q, want 5", r.Actual)
			}
		})
	}
}

func TestChecksumIsOrderIndependentAndSensitive(t *testing.T) {
	t.Parallel()
	b := setup(t,
		"create table a (id int primary key, name text, at timestamptz, amount numeric, tags text[])",
		"create table b (like a including all)",
		"insert into a select g, 'n' || g, '2026-01-01'::timestamptz + g * interval '1 hour', g * 1.5, array['x', g::text] from generate_series(1, 2000) g",
		// the same rows, inserted in reverse order and then updated in place (a different physical layout)
		"insert into b select * from a order by id desc",
		"update b set name = name where id % 3 = 0",
	)
	sum := func(table string) string {
		r := run(t, b, verify.Check{Type: verify.TypeChecksum, Table: table}, verify.Opts{})
		if !r.Passed || r.Error != "" || len(r.Actual) != 16 {
			t.Fatalf("checksum %s: %+v", table, r)
		}
		return r.Actual
	}
	if sa, sb := sum("a"), sum("b"); sa != sb {
		t.Fatalf("same rows, different order: %s != %s", sa, sb)
	}
	before := sum("b")
	drilltest.Exec(t, b.url, "update b set amount = amount + 0.01 where id = 1234")
	if after := sum("b"); after == before {
		t.Fatalf("checksum unchanged after a value changed: %s", after)
	}
	// expect compares
	r := run(t, b, verify.Check{Type: verify.TypeChecksum, Table: "a", Expect: str(sum("a"))}, verify.Opts{})
	if !r.Passed {
		t.Fatalf("expect equal: %+v", r)
	}
	r = run(t, b, verify.Check{Type: verify.TypeChecksum, Table: "a", Expect: str("0000000000000000")}, verify.Opts{})
	if r.Passed {
		t.Fatalf("expect different passed: %+v", r)
	}
}

// The checksum query must not depend on session settings that change how
// values print: the same table hashed under two sessions gives one value.
func TestChecksumIgnoresSessionSettings(t *testing.T) {
	t.Parallel()
	b := setup(t,
		"create table t (at timestamptz, d date, f float8, i interval)",
		"insert into t select now() - g * interval '1 day', current_date - g, g / 3.0, g * interval '90 minutes' from generate_series(1, 100) g",
	)
	ctx := context.Background()
	var sums []string
	for _, settings := range []string{
		"set timezone = 'UTC'; set datestyle = 'ISO, YMD'; set extra_float_digits = 0",
		"set timezone = 'Asia/Kathmandu'; set datestyle = 'SQL, DMY'; set extra_float_digits = 3; set intervalstyle = 'iso_8601'",
	} {
		conn, err := pgx.Connect(ctx, b.url)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, settings); err != nil {
			t.Fatal(err)
		}
		var n int64
		var s string
		if err := conn.QueryRow(ctx, verify.ChecksumSQL("t")).Scan(&n, &s); err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)
		sums = append(sums, s)
	}
	if sums[0] != sums[1] {
		t.Fatalf("checksum depends on session settings: %s vs %s", sums[0], sums[1])
	}
}

// Column types without an extended hash function (json, point) fall back
// to hashing the row's text under pinned settings.
func TestChecksumFallbackForUnhashableTypes(t *testing.T) {
	t.Parallel()
	b := setup(t, "create table j (id int, doc json, p point)", `insert into j values (1, '{"a": 1}', '(1,2)'), (2, '[]', '(3,4)')`)
	r1 := run(t, b, verify.Check{Type: verify.TypeChecksum, Table: "j"}, verify.Opts{})
	if !r1.Passed || r1.Error != "" {
		t.Fatalf("fallback checksum: %+v", r1)
	}
	drilltest.Exec(t, b.url, `update j set doc = '{"a": 2}' where id = 1`)
	r2 := run(t, b, verify.Check{Type: verify.TypeChecksum, Table: "j"}, verify.Opts{})
	if r2.Actual == r1.Actual {
		t.Fatalf("fallback checksum unchanged after an edit: %s", r2.Actual)
	}
}

// A column named t, like the alias the checksum query gives its table, must
// not stand in for the row: every column is hashed, in the binary and in the
// text form.
func TestChecksumTableWithColumnNamedT(t *testing.T) {
	t.Parallel()
	b := setup(t,
		"create table bin (id int primary key, t text, v int)",
		"insert into bin select g, 'x', g from generate_series(1, 100) g",
		"create table txt (id int primary key, t text, doc json)",
		`insert into txt select g, 'x', '{"a": 1}' from generate_series(1, 100) g`,
	)
	for _, c := range []struct{ table, edit string }{
		{"bin", "update bin set v = 0 where id = 7"},
		{"txt", `update txt set doc = '{"a": 2}' where id = 7`},
	} {
		before := run(t, b, verify.Check{Type: verify.TypeChecksum, Table: c.table}, verify.Opts{})
		drilltest.Exec(t, b.url, c.edit)
		after := run(t, b, verify.Check{Type: verify.TypeChecksum, Table: c.table}, verify.Opts{})
		if before.Error != "" || after.Error != "" || before.Actual == after.Actual {
			t.Fatalf("%s: checksum blind to a column other than t: %+v then %+v", c.table, before, after)
		}
	}
}

func TestRecency(t *testing.T) {
	t.Parallel()
	b := setup(t,
		"create table ev (at timestamptz, day date, n int)",
		"insert into ev values ('2026-11-01 10:00:00+00', '2026-10-30', 1)",
		"create table empty (at timestamptz)",
	)
	backup := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC) // 24h after the newest row
	cases := []struct {
		name    string
		check   verify.Check
		opts    verify.Opts
		pass    bool
		errPart string
	}{
		{"within", verify.Check{Table: "ev", Column: "at", MaxAge: 26 * time.Hour}, verify.Opts{BackupCreatedAt: backup}, true, ""},
		{"too old", verify.Check{Table: "ev", Column: "at", MaxAge: 23 * time.Hour}, verify.Opts{BackupCreatedAt: backup}, false, ""},
		{"date column", verify.Check{Table: "ev", Column: "day", MaxAge: 4 * 24 * time.Hour}, verify.Opts{BackupCreatedAt: backup}, true, ""},
		{"empty table", verify.Check{Table: "empty", Column: "at", MaxAge: time.Hour}, verify.Opts{BackupCreatedAt: backup}, false, "no rows"},
		{"not a time column", verify.Check{Table: "ev", Column: "n", MaxAge: time.Hour}, verify.Opts{BackupCreatedAt: backup}, false, "cannot cast"},
		{"unknown backup time", verify.Check{Table: "ev", Column: "at", MaxAge: time.Hour}, verify.Opts{}, false, "creation time is unknown"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.check.Type = verify.TypeRecency
			r := run(t, b, tc.check, tc.opts)
			if r.Passed != tc.pass || !strings.Contains(r.Error, tc.errPart) || (tc.errPart == "" && r.Error != "") {
				t.Fatalf("got %+v, want passed=%v error containing %q", r, tc.pass, tc.errPart)
			}
		})
	}
	r := run(t, b, verify.Check{Type: verify.TypeRecency, Table: "ev", Column: "at", MaxAge: 26 * time.Hour}, verify.Opts{BackupCreatedAt: backup})
	if r.Newest == nil || !r.Newest.Equal(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("newest = %v", r.Newest)
	}
}

func TestSQL(t *testing.T) {
	t.Parallel()
	b := setup(t, "create table o (total numeric, at timestamptz)", "insert into o values (10, '2026-01-02 03:04:05+00'), (-1, null)")
	cases := []struct {
		name, query, expect string
		pass                bool
		errPart             string
		actual              string
	}{
		{"equal", "select count(*) from o where total < 0", "1", true, "", "1"},
		{"not equal", "select count(*) from o where total < 0", "0", false, "", "1"},
		{"text form of a timestamp is pinned to UTC and ISO", "select max(at) from o", "2026-01-02 03:04:05+00", true, "", "2026-01-02 03:04:05+00"},
		{"null never passes", "select null::text", "NULL", false, "", "NULL"},
		{"two rows", "select total from o", "10", false, "one row", ""},
		{"two columns", "select 1, 2", "1", false, "one column", ""},
		{"bad sql", "select nope from o", "1", false, "does not exist", ""},
		{"writes are refused", "delete from o", "0", false, "read-only", ""},
		{"two statements are refused", "select 1; drop table o", "1", false, "multiple commands", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, b, verify.Check{Type: verify.TypeSQL, Query: tc.query, Expect: str(tc.expect)}, verify.Opts{})
			if r.Passed != tc.pass || !strings.Contains(r.Error, tc.errPart) || (tc.errPart == "" && r.Error != "") {
				t.Fatalf("got %+v, want passed=%v error containing %q", r, tc.pass, tc.errPart)
			}
			if tc.actual != "" && r.Actual != tc.actual {
				t.Fatalf("actual = %q, want %q", r.Actual, tc.actual)
			}
		})
	}
	// the table is still there: nothing above could write
	r := run(t, b, verify.Check{Type: verify.TypeRowCount, Table: "o", Equals: i64(2)}, verify.Opts{})
	if !r.Passed {
		t.Fatalf("table changed by a check: %+v", r)
	}
}

func TestStatementTimeoutFailsTheCheck(t *testing.T) {
	t.Parallel()
	url := drilltest.NewDatabase(t)
	conn, err := verify.Connect(context.Background(), url, verify.Opts{StatementTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	r := verify.RunOne(context.Background(), conn, verify.Check{Type: verify.TypeSQL, Query: "select pg_sleep(5)::text", Expect: str("")}, verify.Opts{})
	if r.Passed || !strings.Contains(r.Error, "statement timeout") {
		t.Fatalf("got %+v, want a statement timeout failure", r)
	}
}

func TestQuoteTable(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"orders":          `"orders"`,
		"public.orders":   `"public"."orders"`,
		"Public.Orders":   `"public"."orders"`,
		`"Mixed"."Case"`:  `"Mixed"."Case"`,
		`"dot.ted"`:       `"dot.ted"`,
		`x."we""ird"`:     `"x"."we""ird"`,
		"a; drop table b": `"a; drop table b"`,
	}
	for in, want := range cases {
		got, err := verify.QuoteTable(in)
		if err != nil || got != want {
			t.Errorf("QuoteTable(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "a.b.c", ".x", `"open`} {
		if _, err := verify.QuoteTable(bad); err == nil {
			t.Errorf("QuoteTable(%q): want an error", bad)
		}
	}
}
