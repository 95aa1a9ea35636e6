package drilltest

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// ShopRows is the number of orders in the Shop database.
const ShopRows = 2000

// Shop creates a small "production" database: customers and orders with
// created_at spread over the last ShopRows minutes, and a json column.
// It returns its URL.
func Shop(t testing.TB) string {
	t.Helper()
	url := NewDatabase(t)
	Exec(t, url,
		"create table customers (id int primary key, name text not null, profile json)",
		"insert into customers select g, 'customer ' || g, json_build_object('tier', g % 3) from generate_series(1, 100) g",
		`create table orders (id bigint primary key, customer_id int not null references customers, total numeric(12,2) not null,
			created_at timestamptz not null)`,
		"insert into orders select g, 1 + g % 100, (g % 500) + 0.99, now() - g * interval '1 minute' from generate_series(1, 2000) g",
		"create index orders_created_at on orders (created_at)",
	)
	return url
}

// DumpAs writes a pg_dump of the database at url in format (custom, tar,
// directory, plain, plain-gzip) to path and returns path.
func DumpAs(t testing.TB, url, format, path string) string {
	t.Helper()
	switch format {
	case "custom":
		Dump(t, url, "-Fc", "-f", path)
	case "tar":
		Dump(t, url, "-Ft", "-f", path)
	case "directory":
		Dump(t, url, "-Fd", "-f", path)
	case "plain":
		Dump(t, url, "-Fp", "-f", path)
	case "plain-gzip":
		plain := path + ".tmp"
		Dump(t, url, "-Fp", "-f", plain)
		gzipFile(t, plain, path)
		os.Remove(plain)
	default:
		t.Fatalf("unknown format %q", format)
	}
	return path
}

func gzipFile(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// Touch sets the modification time of path.
func Touch(t testing.TB, path string, at time.Time) {
	t.Helper()
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

// BackupDir returns a new directory for backups.
func BackupDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "backups")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

var (
	bigOnce sync.Once
	bigDir  string
	bigPath string
	bigErr  string
)

// BigDump links (hard) into dir a custom-format backup whose restore takes
// several seconds (1.5M rows and an index): long enough to interrupt. It
// is made once per test binary and removed by Main.
func BigDump(t testing.TB, dir string) string {
	t.Helper()
	bigOnce.Do(func() {
		shop := Shop(t)
		Exec(t, shop,
			"create table events (id bigint, payload text, at timestamptz)",
			"insert into events select g, md5(g::text) || md5((g + 1)::text), now() from generate_series(1, 1500000) g",
			"create index on events (payload)",
		)
		d, err := os.MkdirTemp("", "drilltest-big-")
		if err != nil {
			bigErr = err.Error()
			return
		}
		bigDir = d
		bigPath = DumpAs(t, shop, "custom", filepath.Join(d, "shop.dump"))
	})
	if bigPath == "" {
		t.Fatalf("big dump not made: %s", bigErr)
	}
	// a hard link: a symbolic link out of a backup directory is no backup
	link := filepath.Join(dir, "shop.dump")
	if err := os.Link(bigPath, link); err != nil {
		b, rerr := os.ReadFile(bigPath) // another file system
		if rerr != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(link, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return link
}

// exoticSchema is a set of tables with every kind of column whose text or
// binary form could differ between a database and its restored copy, or
// between two sessions.
var exoticSchema = []string{
	`create type mood as enum ('sad', 'ok', 'happy')`,
	`create domain posint as int check (value > 0)`,
	`create type pair as (a int, b mood)`,
	`create table "Mixed Case"."Order Lines" (id int, "Qty" posint, note text)`,
	`create table kinds (j json, jb jsonb, x xml, m money, p point, ia int[], ta text[], ea mood[], e mood, d posint,
		f8 float8, f4 float4, n numeric, at timestamptz, ts timestamp, tt timetz, iv interval, b bytea, c pair,
		rc regclass, big text, u uuid, r int4range, dropped_later int)`,
	`alter table kinds drop column dropped_later`,
	`insert into kinds select '{"b": 1, "a": [1, 2.50]}', '{"b": 1, "a": [1, 2.50]}', '<a x="1">t</a>', 1234.56, point(1.5, g),
		array[g, null], array['a b', '"q"', null], array['sad', 'happy']::mood[], (array['sad', 'ok', 'happy'])[1 + g % 3]::mood, g,
		case when g = 1 then 'NaN'::float8 when g = 2 then '-Infinity' else g / 7.0 end, g / 3.0, case when g = 3 then 'NaN'::numeric else g / 7.0 end,
		'2026-03-01 12:00:00+00'::timestamptz + g * interval '37 minutes', '2026-03-01 12:00'::timestamp, '12:00+05:30', g * interval '1 day 3 hours',
		decode(lpad(to_hex(g), 4, '0'), 'hex'), row(g, 'ok')::pair, 'kinds'::regclass,
		case when g = 5 then repeat(md5(g::text), 4000) else 'short' end, md5(g::text)::uuid, int4range(g, g + 10)
		from generate_series(1, 50) g`,
	`create table nopk (a int, b text)`,
	`insert into nopk select g % 5, 'dup' from generate_series(1, 20) g`,
	`create table parts (k int, v text) partition by range (k)`,
	`create table parts_low partition of parts for values from (0) to (100)`,
	`create table parts_high partition of parts for values from (100) to (1000)`,
	`insert into parts select g, 'v' || g from generate_series(1, 300) g`,
	`create table orders (id bigserial primary key, customer int not null references nopk_ref, at timestamptz default now())`,
}

// Exotic creates a database of tables with every kind of column whose
// text or binary form could differ between a database and its restored
// copy, or between two sessions, and returns its URL.
func Exotic(t testing.TB) string {
	t.Helper()
	url := NewDatabase(t)
	sql := append([]string{`create schema "Mixed Case"`, `create table nopk_ref (id int primary key)`}, exoticSchema...)
	sql = append(sql, `create index on kinds (at)`, `insert into nopk_ref values (1)`, `insert into orders (customer) values (1)`,
		`insert into "Mixed Case"."Order Lines" values (1, 2, 'x')`)
	Exec(t, url, sql...)
	return url
}
