package verify_test

import (
	"context"
	"strings"
	"testing"

	"drill/drills/drilltest"
	"drill/verify"
)

const ordersSQL = `create type state as enum ('new', 'paid');
create table orders (id bigint primary key, total numeric not null, state state not null, note text, updated_at timestamptz not null default '2026-01-01');
insert into orders (id, total, state, note) select g, g * 1.5, case when g % 2 = 0 then 'paid'::state else 'new'::state end, 'order ' || g from generate_series(1, 25000) g`

// withPassword adds a password to a key=value connection string; the
// test server trusts local connections, so it is accepted and must never
// be seen again.
func withPassword(dsn, pw string) string { return dsn + " password=" + pw }

func TestCompare(t *testing.T) {
	t.Parallel()
	restored := setup(t, ordersSQL)
	const secret = "s3cret-compare-pw"
	check := func(src string, mod func(*verify.Check)) verify.Result {
		c := verify.Check{Type: verify.TypeCompare, Table: "public.orders", SourceURL: withPassword(src, secret), Source: verify.SourceDescription(src)}
		if mod != nil {
			mod(&c)
		}
		r := run(t, restored, c, verify.Opts{})
		for _, s := range []string{r.Actual, r.Error, r.Expected, c.SQLText()} {
			if strings.Contains(s, secret) {
				t.Fatalf("the source's password is in the result: %q", s)
			}
		}
		return r
	}

	// The source only gained rows since the backup (and its enum has other OIDs).
	gained := drilltest.NewDatabase(t)
	drilltest.Exec(t, gained, "create type unrelated as enum ('x')", ordersSQL,
		"insert into orders (id, total, state) select g, 1, 'new' from generate_series(25001, 26000) g")
	if r := check(gained, nil); !r.Passed || r.Actual != "25,000 rows compared, 0 differences" {
		t.Fatalf("source that only gained rows: %+v", r)
	}

	// One old row changed, one deleted, one older key the restore lacks.
	changed := drilltest.NewDatabase(t)
	drilltest.Exec(t, changed, ordersSQL, "update orders set total = 0, updated_at = now() where id = 12345",
		"delete from orders where id = 20001", "insert into orders (id, total, state) values (0, 1, 'new')")
	r := check(changed, nil)
	if r.Passed || !strings.Contains(r.Actual, "3 difference(s)") || !strings.Contains(r.Actual, "id 12345 changed") ||
		!strings.Contains(r.Actual, "id 20001 extra") || !strings.Contains(r.Actual, "id 0 missing") || len(r.Details) != 3 {
		t.Fatalf("changed source: %+v", r)
	}
	// where leaves out rows changed since the backup; max_differences allows some.
	if r := check(changed, func(c *verify.Check) { c.Where = "updated_at < '2026-06-01' and id between 1 and 20000" }); !r.Passed {
		t.Fatalf("where: %+v", r)
	}
	if r := check(changed, func(c *verify.Check) { c.MaxDifferences = i64(3) }); !r.Passed {
		t.Fatalf("max_differences 3: %+v", r)
	}

	// A key that is not unique, a table without a primary key, a wrong password.
	if r := check(gained, func(c *verify.Check) { c.Key = "total" }); r.Passed || !strings.Contains(r.Error, "must be not null and unique") {
		t.Fatalf("non-unique key: %+v", r)
	}
	nopk := setup(t, "create table t (a int)")
	c := verify.Check{Type: verify.TypeCompare, Table: "t", SourceURL: gained}
	if r := verify.RunOne(context.Background(), nopk.conn, c, verify.Opts{}); r.Passed || !strings.Contains(r.Error, "no single-column primary key") {
		t.Fatalf("no primary key: %+v", r)
	}
	bad := strings.Replace(gained, "port=", "port=1", 1)
	if r := check(bad, nil); r.Passed || r.Error == "" {
		t.Fatalf("unreachable source: %+v", r)
	}
}

// A table smaller than one key range, and one changed row in it; a column
// named like the query's alias is hashed as a column, not as the row.
func TestCompareSmallTable(t *testing.T) {
	t.Parallel()
	const sql = "create table t (k text primary key, t text, v int); insert into t select 'key-' || g, 'x', g from generate_series(1, 50) g"
	restored := setup(t, sql)
	src := drilltest.NewDatabase(t)
	drilltest.Exec(t, src, sql, "update t set v = 0 where k = 'key-7'")
	r := run(t, restored, verify.Check{Type: verify.TypeCompare, Table: "t", SourceURL: src}, verify.Opts{})
	if r.Passed || r.Actual != "50 rows compared, 1 difference(s): k key-7 changed" {
		t.Fatalf("%+v", r)
	}
}

// A password with an unencoded '/' makes the rest of the URL read as the
// database name: such a URL is refused, and nothing of it is kept or said.
func TestCompareSourceURLWithUnencodedSlash(t *testing.T) {
	t.Parallel()
	url := "postgres://reader:12/S3cretPW@127.0.0.1:5432/orders" // host "reader", port 12, database "S3cretPW@…"
	if d := verify.SourceDescription(url); d != "" {
		t.Errorf("description %q, want none", d)
	}
	err := verify.Check{Type: verify.TypeCompare, Table: "t", SourceURL: url}.Validate()
	if err == nil || strings.Contains(err.Error(), "S3cret") || !strings.Contains(err.Error(), "%2F") {
		t.Fatalf("validate: %v", err)
	}
	if d := verify.SourceDescription("host=/var/run/postgresql dbname=orders password=x"); d != "/var/run/postgresql:5432/orders" {
		t.Errorf("socket description %q", d)
	}
	if d := verify.SourceDescription(""); d != "" {
		t.Errorf("no URL: description %q, want none", d)
	}
}
