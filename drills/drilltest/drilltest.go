// Package drilltest helps tests talk to real PostgreSQL: a fresh database
// per test on $DRILL_TEST_DATABASE_URL (or on a private cluster started for
// the test binary), sample data, pg_dump archives, and assertions that a
// drill left nothing behind.
package drilltest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"drill/drills/local"
	"drill/drills/statedb"

	"github.com/jackc/pgx/v5"
)

var (
	serverOnce sync.Once
	serverURL  string
	serverErr  error
	private    *local.StateServer
)

// Main runs the tests of a package and stops the private cluster, if one
// was started, afterwards. Call it from TestMain.
func Main(m *testing.M) int {
	code := m.Run()
	if bigDir != "" {
		_ = os.RemoveAll(bigDir)
	}
	if private != nil {
		_ = private.Close(context.Background())
		_ = os.RemoveAll(filepath.Dir(private.Dir()))
	}
	return code
}

// ServerURL is the URL of a PostgreSQL server for tests:
// $DRILL_TEST_DATABASE_URL, else a private cluster (see Main).
func ServerURL(t testing.TB) string {
	t.Helper()
	serverOnce.Do(func() {
		if u := os.Getenv("DRILL_TEST_DATABASE_URL"); u != "" {
			serverURL = u
			return
		}
		home, err := os.MkdirTemp("", "drilltest-")
		if err != nil {
			serverErr = err
			return
		}
		if err := os.Chmod(home, 0o711); err != nil {
			serverErr = err
			return
		}
		private, serverErr = local.StartState(context.Background(), home, "")
		if serverErr == nil {
			serverURL = private.DSN()
		}
	})
	if serverErr != nil {
		t.Fatalf("test PostgreSQL: %v", serverErr)
	}
	return serverURL
}

// NewDatabase creates an empty database for the test, dropped at cleanup,
// and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	base := ServerURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to test server: %v", err)
	}
	defer conn.Close(ctx)
	name := "drilltest_" + randomHex(6)
	if _, err := conn.Exec(ctx, "create database "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "drop database if exists "+name+" with (force)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return DatabaseURL(t, name)
}

// DatabaseURL is the connection string of database name on the test server.
func DatabaseURL(t testing.TB, name string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = name
	return connString(cfg)
}

// connString renders a pgx config back to a key=value connection string.
func connString(cfg *pgx.ConnConfig) string {
	parts := []string{
		"host=" + cfg.Host,
		fmt.Sprintf("port=%d", cfg.Port),
		"user=" + cfg.User,
		"dbname=" + cfg.Database,
		"sslmode=disable",
	}
	if cfg.Password != "" {
		parts = append(parts, "password="+cfg.Password)
	}
	return strings.Join(parts, " ")
}

// Store opens a migrated store on a fresh database.
func Store(t testing.TB) *statedb.Store {
	t.Helper()
	ctx := context.Background()
	s, err := statedb.Open(ctx, NewDatabase(t), statedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// Exec runs SQL statements on the database at url.
func Exec(t testing.TB, url string, sql ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range sql {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// Binaries returns the PostgreSQL programs of this machine.
func Binaries(t testing.TB) local.Binaries {
	t.Helper()
	b, err := local.FindBinaries()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Dump runs pg_dump with args (such as "-Fc", "-f", path) on the database at url.
func Dump(t testing.TB, url string, args ...string) {
	t.Helper()
	cmd := exec.Command(Binaries(t).Path("pg_dump"), append([]string{"--dbname", url}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_dump %v: %v: %s", args, err, out)
	}
}

// SharedDir returns a new directory that the OS user clusters run as can
// enter: targets make their cluster directories here.
func SharedDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir() // <tmp>/TestName123/001: both made 0700
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// AssertNothingLeft fails the test when dir has entries or any process's
// command line names dir (a postgres server, a pg_restore).
func AssertNothingLeft(t testing.TB, dir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		procs := ProcessesMentioning(dir)
		entries, _ := os.ReadDir(dir)
		if len(procs) == 0 && len(entries) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Fatalf("left behind in %s: entries %v, processes %v", dir, names, procs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ProcessesMentioning lists "pid: cmdline" of processes whose command line contains s.
func ProcessesMentioning(s string) []string {
	var found []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	self := fmt.Sprintf("/proc/%d/", os.Getpid())
	for _, p := range dirs {
		if strings.HasPrefix(p, self) {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, s) {
			found = append(found, filepath.Base(filepath.Dir(p))+": "+cmd)
		}
	}
	return found
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// WaitFor polls cond until it holds, failing the test after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Browser finds Chromium. Without it the test is skipped, unless
// DRILL_REQUIRE_BROWSER is set (CI sets it after installing Chromium).
func Browser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("DRILL_REQUIRE_BROWSER") != "" {
		t.Fatal("Chromium not found (apt-get install chromium) and DRILL_REQUIRE_BROWSER is set")
	}
	t.Skip("Chromium not found: apt-get install chromium to run the browser test")
	return ""
}
