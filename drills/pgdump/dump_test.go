package pgdump_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drill/drills/drilltest"
	"drill/drills/pgdump"
	"drill/verify"
)

// A dump restored by hand matches its fingerprint, whatever pg_dump was
// told to leave out: a partition's rows, an inheritance child, tables.
func TestDumpFingerprintMatchesRestore(t *testing.T) {
	t.Parallel()
	src := drilltest.NewDatabase(t)
	drilltest.Exec(t, src,
		"create table events (id int, at date) partition by range (at)",
		"create table events_2024 partition of events for values from ('2024-01-01') to ('2025-01-01')",
		"create table events_2025 partition of events for values from ('2025-01-01') to ('2026-01-01')",
		"insert into events select g, date '2024-01-01' + g % 700 from generate_series(1, 1200) g",
		"create table base (id int, note text)",
		"create table child (extra int) inherits (base)",
		"insert into base select g, 'b' from generate_series(1, 100) g",
		"insert into child select g, 'c', g from generate_series(1, 50) g",
		"create table plain (v text)", "insert into plain values ('x'), ('y')",
		"analyze",
	)
	bin := drilltest.Binaries(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		args  []string
		want  map[string]int64 // rows per fingerprinted table
		empty []string         // tables dumped without rows
	}{
		{"everything", nil, map[string]int64{"public.events": 1200, "public.base": 100, "public.child": 50, "public.plain": 2}, nil},
		{"partition data excluded", []string{"--exclude-table-data=public.events_2024"},
			map[string]int64{"public.events": 1200 - 731 /* events_2024 holds 731 */, "public.base": 100, "public.child": 50, "public.plain": 2}, nil},
		{"parent without child", []string{"-t", "public.base"}, map[string]int64{"public.base": 100}, nil},
		{"child without parent", []string{"-T", "public.child"}, map[string]int64{"public.events": 1200, "public.base": 100, "public.plain": 2}, nil},
		{"data excluded", []string{"--exclude-table-data=public.plain"},
			map[string]int64{"public.events": 1200, "public.base": 100, "public.child": 50, "public.plain": 0}, []string{"public.plain"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, format := range []string{"custom", "plain"} {
				out := filepath.Join(t.TempDir(), "x."+format)
				res, err := pgdump.Dump(ctx, pgdump.DumpOptions{URL: src, Out: out, Format: format, Jobs: 2, Args: tc.args,
					PGDump: bin.Path("pg_dump"), PGRestore: bin.Path("pg_restore")})
				if err != nil {
					t.Fatalf("%s: %v", format, err)
				}
				got := map[string]int64{}
				for _, tf := range res.Facts.Tables {
					got[tf.Name] = tf.Rows
					if tf.DataExcluded != strings.Contains(strings.Join(tc.empty, " "), tf.Name) {
						t.Errorf("%s: %s data_excluded = %v", format, tf.Name, tf.DataExcluded)
					}
				}
				if len(got) != len(tc.want) {
					t.Fatalf("%s: tables %v, want %v", format, got, tc.want)
				}
				for name, rows := range tc.want {
					if got[name] != rows {
						t.Errorf("%s: %s has %d rows in the fingerprint, want %d", format, name, got[name], rows)
					}
				}
				dst := drilltest.NewDatabase(t)
				restore := exec.Command(bin.Path("pg_restore"), "--no-owner", "-d", dst, out)
				if format == "plain" {
					restore = exec.Command(bin.Path("psql"), "-q", "-v", "ON_ERROR_STOP=1", "-d", dst, "-f", out)
				}
				if msg, err := restore.CombinedOutput(); err != nil {
					t.Fatalf("%s: restore: %v: %s", format, err, msg)
				}
				conn, err := verify.Connect(ctx, dst, verify.Opts{StatementTimeout: time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				r := verify.RunOne(ctx, conn, verify.Check{Type: verify.TypeFingerprint, Name: "fp"}, verify.Opts{Fingerprint: res.Facts, DSN: dst, Jobs: 2})
				conn.Close(ctx)
				if !r.Passed {
					t.Errorf("%s: restored copy does not match its fingerprint: %s %s", format, r.Actual, r.Error)
				}
			}
		})
	}
}

// PG_DUMP_ARGS are read as pg_dump's getopt reads them: what drill sets
// is refused in any spelling (bundled, abbreviated), a database name too;
// a value after an option is a value, whatever it looks like.
func TestDumpArgsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	try := func(args ...string) error {
		_, err := pgdump.Dump(ctx, pgdump.DumpOptions{URL: "postgres://nobody@127.0.0.1:1/x", Out: filepath.Join(dir, "x.dump"), Jobs: 1, Args: args})
		return err
	}
	for _, args := range [][]string{{"--fil=/tmp/x"}, {"-vf/tmp/x"}, {"-v", "-f", "/tmp/x"}, {"--form=plain"}, {"-OFp"}, {"--snap=00000003-1"},
		{"--dbname", "other"}, {"otherdb"}, {"--jobs=4"}, {"-U", "admin"}, {"--host=evil"}, {"-t", "orders", "otherdb"}} {
		if err := try(args...); !errors.Is(err, pgdump.ErrDumpUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
	for _, args := range [][]string{{"-t", "-fx"}, {"--table", "orders"}, {"-Z", "9"}, {"--compress=9"}, {"-n", "sales", "-T", "sales.tmp"},
		{"--exclude-table-data=public.sessions"}, {"-v"}, {"--schema-only"}, {"--no-owner"}} {
		if err := try(args...); errors.Is(err, pgdump.ErrDumpUsage) {
			t.Errorf("%q refused: %v", args, err)
		}
	}
	for _, bad := range []pgdump.DumpOptions{{Jobs: 0}, {Jobs: 1, Out: filepath.Join(dir, ".hidden.dump")}} {
		bad.URL = "postgres://nobody@127.0.0.1:1/x"
		if bad.Out == "" {
			bad.Out = filepath.Join(dir, "x.dump")
		}
		if _, err := pgdump.Dump(ctx, bad); !errors.Is(err, pgdump.ErrDumpUsage) {
			t.Errorf("%+v: %v, want a usage error", bad, err)
		}
	}
}

// A dump that fails to land leaves the backup already there, and its
// fingerprint, as they were.
func TestFailedDumpKeepsTheOldBackup(t *testing.T) {
	t.Parallel()
	src := drilltest.Shop(t)
	bin := drilltest.Binaries(t)
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "x.dump")
	opts := pgdump.DumpOptions{URL: src, Out: out, Jobs: 1, PGDump: bin.Path("pg_dump"), PGRestore: bin.Path("pg_restore")}
	if _, err := pgdump.Dump(ctx, opts); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(out + verify.FingerprintSuffix)
	opts.Format = "directory" // onto the file: refused before anything
	if _, err := pgdump.Dump(ctx, opts); !errors.Is(err, pgdump.ErrDumpUsage) {
		t.Fatalf("directory dump onto a file: %v", err)
	}
	opts.Format, opts.Args = "custom", []string{"--table=no_such_table"} // pg_dump fails
	if _, err := pgdump.Dump(ctx, opts); err == nil {
		t.Fatal("a failing pg_dump succeeded")
	}
	after, _ := os.ReadFile(out + verify.FingerprintSuffix)
	if string(before) != string(after) || len(before) == 0 {
		t.Fatal("a failed dump changed the old backup's fingerprint")
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 2 {
		t.Fatalf("left behind: %v", entries)
	}
}
