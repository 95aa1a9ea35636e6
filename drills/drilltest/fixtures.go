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

// BigDump links into dir a custom-format backup whose restore takes
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
	link := filepath.Join(dir, "shop.dump")
	if err := os.Symlink(bigPath, link); err != nil {
		t.Fatal(err)
	}
	return link
}
