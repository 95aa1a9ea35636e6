package pgdump_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drill/drills"
	"drill/drills/drilltest"
	"drill/drills/pgdump"
)

func TestMain(m *testing.M) { os.Exit(drilltest.Main(m)) }

func latest(t *testing.T, cfg pgdump.SourceConfig) (drills.Backup, error) {
	t.Helper()
	src, err := pgdump.NewSource(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return src.Latest(context.Background())
}

func TestFileSourceFormatsAndHeader(t *testing.T) {
	t.Parallel()
	shop := drilltest.Shop(t)
	dir := drilltest.BackupDir(t)
	for _, tc := range []struct{ format, name, source string }{
		{"custom", "a.dump", "archive header"},
		{"tar", "a.tar", "archive header"},
		{"directory", "a.dir", "archive header"},
		{"plain", "a.sql", "file mtime"},
		{"plain-gzip", "a.sql.gz", "file mtime"},
	} {
		path := drilltest.DumpAs(t, shop, tc.format, filepath.Join(dir, tc.name))
		b, err := latest(t, pgdump.SourceConfig{Location: path})
		if err != nil {
			t.Fatalf("%s: %v", tc.format, err)
		}
		if b.Format != tc.format || b.CreatedAtSource != tc.source || b.ID != path {
			t.Errorf("%s: got %+v", tc.format, b)
		}
		if age := time.Since(b.CreatedAt); age < -time.Minute || age > time.Minute {
			t.Errorf("%s: created at %s, want about now", tc.format, b.CreatedAt)
		}
		if tc.source == "archive header" && !strings.HasPrefix(b.Database, "drilltest_") {
			t.Errorf("%s: database %q from the header", tc.format, b.Database)
		}
		if got, err := b.Fetch(context.Background(), t.TempDir(), nil); err != nil || got != path {
			t.Errorf("%s: fetch = %q, %v", tc.format, got, err)
		}
	}
}

func TestFileSourceNewestInDirectory(t *testing.T) {
	t.Parallel()
	shop := drilltest.Shop(t)
	dir := drilltest.BackupDir(t)
	now := time.Now()
	for i, name := range []string{"shop-1.dump", "shop-3.dump", "shop-2.dump"} {
		p := drilltest.DumpAs(t, shop, "custom", filepath.Join(dir, name))
		drilltest.Touch(t, p, now.Add(time.Duration(i)*time.Hour))
	}
	// never candidates: hidden files, uploads in progress, checksums
	for _, name := range []string{".shop-9.dump", "shop-9.dump.tmp", "shop-9.dump.sha256", "drill.yaml", "backup.log", "NOTES.md"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		drilltest.Touch(t, filepath.Join(dir, name), now.Add(10*time.Hour))
	}
	// a link to a backup beside it counts; a link out of the directory
	// (to a newer dump, or to any file of the host) does not
	if err := os.Symlink("shop-2.dump", filepath.Join(dir, "latest.dump")); err != nil {
		t.Fatal(err)
	}
	elsewhere := drilltest.DumpAs(t, shop, "custom", filepath.Join(t.TempDir(), "elsewhere.dump"))
	drilltest.Touch(t, elsewhere, now.Add(20*time.Hour))
	if err := os.Symlink(elsewhere, filepath.Join(dir, "zz-newest.dump")); err != nil {
		t.Fatal(err)
	}
	b, err := latest(t, pgdump.SourceConfig{Location: dir})
	if err != nil || filepath.Base(b.ID) != "shop-2.dump" {
		t.Fatalf("got %s, %v; want shop-2.dump (newest mtime)", b.ID, err)
	}
	if names := fmt.Sprint(b.Selection.Candidates); !strings.Contains(names, "latest.dump") || strings.Contains(names, "zz-newest") {
		t.Fatalf("candidates %s: want latest.dump, not the link out of the directory", names)
	}
	// a location that is a link (written in the config) is followed, and
	// the backup is named by the file it leads to
	b, err = latest(t, pgdump.SourceConfig{Location: filepath.Join(dir, "latest.dump")})
	if err != nil || filepath.Base(b.ID) != "shop-2.dump" {
		t.Fatalf("a location that is a link: got %s, %v; want shop-2.dump", b.ID, err)
	}
	// a pattern narrows the candidates
	b, err = latest(t, pgdump.SourceConfig{Location: dir, Pattern: "shop-[13].dump"})
	if err != nil || filepath.Base(b.ID) != "shop-3.dump" {
		t.Fatalf("with pattern: got %s, %v; want shop-3.dump", b.ID, err)
	}
	_, err = latest(t, pgdump.SourceConfig{Location: dir, Pattern: "*.backup"})
	if !errors.Is(err, drills.ErrNoBackup) || !strings.Contains(err.Error(), `matching "*.backup"`) {
		t.Fatalf("pattern matching nothing: %v", err)
	}
}

func TestFileSourceErrors(t *testing.T) {
	t.Parallel()
	dir := drilltest.BackupDir(t)
	_, err := latest(t, pgdump.SourceConfig{Location: filepath.Join(dir, "missing")})
	if !errors.Is(err, drills.ErrNoBackup) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing location: %v", err)
	}
	_, err = latest(t, pgdump.SourceConfig{Location: dir})
	if !errors.Is(err, drills.ErrNoBackup) {
		t.Errorf("empty directory: %v", err)
	}
	bin := filepath.Join(dir, "random.bin")
	if err := os.WriteFile(bin, []byte{0, 1, 2, 3, 0xff}, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = latest(t, pgdump.SourceConfig{Location: dir})
	if !errors.Is(err, pgdump.ErrUnknownFormat) {
		t.Errorf("binary junk: %v", err)
	}
	prose := filepath.Join(dir, "orders-latest")
	if err := os.WriteFile(prose, []byte("Backups are taken nightly by cron.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err = latest(t, pgdump.SourceConfig{Location: prose}); !errors.Is(err, pgdump.ErrUnknownFormat) {
		t.Errorf("prose taken for SQL: %v", err)
	}
	if err := os.WriteFile(prose, []byte("\n-- hand-written\nCREATE TABLE t (id int);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := latest(t, pgdump.SourceConfig{Location: prose}); err != nil || b.Format != drills.FormatPlain {
		t.Errorf("SQL without .sql: %v %v", b.Format, err)
	}
	os.Remove(prose)
	// a custom archive whose header is cut off is unreadable, not silently skipped
	if err := os.WriteFile(bin, []byte("PGDMP\x01"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = latest(t, pgdump.SourceConfig{Location: dir})
	if err == nil || !strings.Contains(err.Error(), "unreadable") {
		t.Errorf("cut header: %v", err)
	}
}

// Not parallel: the AWS environment is per process.
func TestS3SourceNewestObject(t *testing.T) {
	s := drilltest.NewS3(t)
	s.Bucket(t, "backups")
	shop := drilltest.Shop(t)
	dir := t.TempDir()
	dump, err := os.ReadFile(drilltest.DumpAs(t, shop, "custom", filepath.Join(dir, "shop.dump")))
	if err != nil {
		t.Fatal(err)
	}
	s.Put(t, "backups", "other/shop.dump", dump)
	s.Put(t, "backups", "orders/2026-11-01.dump", dump)
	time.Sleep(1100 * time.Millisecond) // LastModified has one-second resolution
	s.Put(t, "backups", "orders/2026-11-02.dump", dump)
	s.Put(t, "backups", "orders/2026-11-02.dump.sha256", []byte("abc"))

	b, err := latest(t, pgdump.SourceConfig{Location: "s3://backups/orders/"})
	if err != nil {
		t.Fatal(err)
	}
	if b.ID != "s3://backups/orders/2026-11-02.dump" || b.Format != drills.FormatCustom || b.SizeBytes != int64(len(dump)) {
		t.Fatalf("got %+v", b)
	}
	if b.CreatedAtSource != "archive header" {
		t.Errorf("created_at from %q, want the archive header read from the object's first bytes", b.CreatedAtSource)
	}
	spool := t.TempDir()
	var reported int64
	path, err := b.Fetch(context.Background(), spool, func(done, total int64) { reported = done })
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, dump) || reported != int64(len(dump)) {
		t.Fatalf("download: %d bytes, reported %d, want %d (%v)", len(got), reported, len(dump), err)
	}
}

func TestS3SourceMissingBucketAndPrefix(t *testing.T) {
	s := drilltest.NewS3(t)
	s.Bucket(t, "backups")
	s.Put(t, "backups", "orders/x.dump", []byte("--\n-- PostgreSQL database dump\n"))
	_, err := latest(t, pgdump.SourceConfig{Location: "s3://nope/orders/"})
	if !errors.Is(err, drills.ErrNoBackup) || !strings.Contains(err.Error(), `bucket "nope" does not exist`) {
		t.Errorf("missing bucket: %v", err)
	}
	_, err = latest(t, pgdump.SourceConfig{Location: "s3://backups/invoices/"})
	if !errors.Is(err, drills.ErrNoBackup) || !strings.Contains(err.Error(), "no objects under s3://backups/invoices/") {
		t.Errorf("missing prefix: %v", err)
	}
}

// A custom archive of a newer format than this pg_restore reads: drill
// says which PostgreSQL version made it, not pg_restore's raw error. The
// archive is this host's own with its format version byte raised (the
// one error no pg_dump on this host can produce).
func TestNewerArchiveNamesTheVersion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := drilltest.DumpAs(t, drilltest.Shop(t), "custom", filepath.Join(dir, "shop.dump"))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[6] = 16 // "PGDMP", vmaj, vmin: 1.16 is PostgreSQL 17's
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := pgdump.NewSource(context.Background(), pgdump.SourceConfig{Location: path, PGRestore: drilltest.Binaries(t).Path("pg_restore")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Latest(context.Background())
	if err == nil || !strings.Contains(err.Error(), "PostgreSQL 17 or later") || !strings.Contains(err.Error(), "postgresql-client-17") {
		t.Fatalf("error %v", err)
	}
}

// An object larger than two parts is fetched in ranged parts side by
// side: the file is the object, byte for byte, and progress reaches its size.
func TestS3SourceRangedDownload(t *testing.T) {
	s := drilltest.NewS3(t)
	s.Bucket(t, "backups")
	dump, err := os.ReadFile(drilltest.DumpAs(t, drilltest.Shop(t), "custom", filepath.Join(t.TempDir(), "shop.dump")))
	if err != nil {
		t.Fatal(err)
	}
	// A custom archive with 70 MB of noise after it: pg_restore reads the
	// header, the download must carry every byte.
	big := append(dump, make([]byte, 70<<20)...)
	for i := len(dump); i < len(big); i += 4096 {
		big[i] = byte(i / 4096)
	}
	s.Put(t, "backups", "orders/big.dump", big)
	b, err := latest(t, pgdump.SourceConfig{Location: "s3://backups/orders/"})
	if err != nil {
		t.Fatal(err)
	}
	var reported int64
	path, err := b.Fetch(context.Background(), t.TempDir(), func(done, total int64) { reported = done })
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, big) || reported != int64(len(big)) {
		t.Fatalf("download: %d bytes (equal %v), reported %d, want %d (%v)", len(got), bytes.Equal(got, big), reported, len(big), err)
	}
}
