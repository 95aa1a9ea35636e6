package local_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"drill/drills"
	"drill/drills/drilltest"
	"drill/drills/local"

	"github.com/jackc/pgx/v5"
)

// spreadFixture is a database of one big table and three small ones, and
// one of four equal tables.
func spreadFixtures(t *testing.T) (skewed, even string) {
	t.Helper()
	skewed = drilltest.NewDatabase(t)
	drilltest.Exec(t, skewed, `create table big (id int primary key, pad text);
		insert into big select g, repeat(md5(g::text), 4) from generate_series(1, 60000) g`)
	for i := range 3 {
		drilltest.Exec(t, skewed, fmt.Sprintf(`create table small%d (id int); insert into small%[1]d select generate_series(1, 100)`, i))
	}
	even = drilltest.NewDatabase(t)
	for i := range 4 {
		drilltest.Exec(t, even, fmt.Sprintf(`create table t%d (id int, pad text); insert into t%[1]d select g, md5(g::text) from generate_series(1, 20000) g`, i))
	}
	return skewed, even
}

func tocOf(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command(drilltest.Binaries(t).Path("pg_restore"), "--list", path).Output()
	if err != nil {
		t.Fatalf("pg_restore --list %s: %v", path, err)
	}
	return string(out)
}

// The data offsets in a custom archive's table of contents, and a
// directory archive's data files, say how its data is spread over tables.
func TestSpreadOfArchives(t *testing.T) {
	t.Parallel()
	skewed, even := spreadFixtures(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, url, format, flag string
		table                   string
		minShare, maxShare      float64
	}{
		{"custom-skewed", skewed, drills.FormatCustom, "-Fc", "public.big", 0.95, 1},
		{"custom-uncompressed", skewed, drills.FormatCustom, "-Fc -Z0", "public.big", 0.95, 1},
		{"directory-skewed", skewed, drills.FormatDirectory, "-Fd", "public.big", 0.95, 1},
		{"custom-even", even, drills.FormatCustom, "-Fc", "", 0.2, 0.3},
		{"directory-even", even, drills.FormatDirectory, "-Fd", "", 0.2, 0.3},
	} {
		path := filepath.Join(dir, tc.name)
		drilltest.Dump(t, tc.url, append(strings.Fields(tc.flag), "-f", path)...)
		table, share, tables, ok := local.SpreadOf(tc.format, path, tocOf(t, path))
		if !ok {
			t.Errorf("%s: not measured", tc.name)
			continue
		}
		if share < tc.minShare || share > tc.maxShare || tc.table != "" && table != tc.table || tables != 4 {
			t.Errorf("%s: largest %s holds %.3f of %d tables' data, want %s in [%.2f, %.2f] of 4", tc.name, table, share, tables, tc.table, tc.minShare, tc.maxShare)
		}
	}
	// A custom archive written to a pipe has no offsets: not measured.
	piped := filepath.Join(dir, "piped.dump")
	out, err := exec.Command(drilltest.Binaries(t).Path("pg_dump"), "-Fc", "--dbname", skewed).Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(piped, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, _, ok := local.SpreadOf(drills.FormatCustom, piped, tocOf(t, piped)); ok {
		t.Error("an archive written to a pipe (no data offsets) was measured")
	}
}

// A table of contents cut anywhere, or with bytes changed, is an error or
// a result, never a panic, a hang or a huge allocation.
func TestReadTOCCorrupt(t *testing.T) {
	t.Parallel()
	skewed, _ := spreadFixtures(t)
	path := filepath.Join(t.TempDir(), "a.dump")
	drilltest.Dump(t, skewed, "-Fc", "-f", path)
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	entries, data, err := local.ReadTOC(bytes.NewReader(whole))
	if err != nil || data != 4 || entries < 8 {
		t.Fatalf("the whole archive: %d entries, %d with data, %v; want 4 with data", entries, data, err)
	}
	head := whole[:min(len(whole), 8192)]
	for cut := range len(head) {
		if _, _, err := local.ReadTOC(bytes.NewReader(head[:cut])); err == nil && cut < 200 {
			t.Fatalf("a header cut at byte %d was read without an error", cut)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; i < 5000 && time.Now().Before(deadline); i++ {
		b := bytes.Clone(head)
		for range 1 + rng.IntN(4) {
			b[rng.IntN(len(b))] = byte(rng.Uint32())
		}
		_, _, _ = local.ReadTOC(bytes.NewReader(b))
	}
}

// A local drill restores a backup that is nearly all one table in one
// transaction, and one whose data is spread with a job per core; a
// target's jobs setting is used as given.
func TestRestoreChoosesHowToLoad(t *testing.T) {
	t.Parallel()
	skewed, even := spreadFixtures(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, url string
		jobs      int
		want      string
	}{
		{"skewed", skewed, 0, "one transaction: table public.big holds"},
		{"even", even, 0, " jobs)"},
		{"skewed-jobs-set", skewed, 2, "2 jobs)"},
	} {
		path := filepath.Join(dir, tc.name+".dump")
		drilltest.Dump(t, tc.url, "-Fc", "-f", path)
		said := restoreSaying(t, path, tc.jobs)
		if !strings.Contains(said, tc.want) {
			t.Errorf("%s: the restore said %q, want it to say %q", tc.name, said, tc.want)
		}
		if tc.name == "even" && strings.Contains(said, "one transaction") {
			t.Errorf("even: loaded in one transaction: %q", said)
		}
	}
}

// restoreSaying restores the custom archive at path into a throwaway
// cluster, checks that every row arrived, and returns what the restore
// said about pg_restore.
func restoreSaying(t *testing.T, path string, jobs int) string {
	t.Helper()
	tgt, err := local.NewTarget(local.TargetConfig{Dir: drilltest.SharedDir(t), Jobs: jobs})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	in, err := tgt.Plan(drills.RunRef{ID: 1, Drill: "load", Deadline: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := tgt.Provision(ctx, &in, drills.Backup{}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tgt.Destroy(context.Background(), in) })
	b := drills.Backup{ID: path, Format: drills.FormatCustom, Database: "load",
		Fetch: func(context.Context, string, func(int64, int64)) (string, error) { return path, nil }}
	var said []string
	if err := tgt.Restore(ctx, &in, b, func(msg string) { said = append(said, msg) }); err != nil {
		t.Fatal(err)
	}
	var rows int
	conn, err := pgx.Connect(ctx, in.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `select (select count(*) from pg_class where relkind = 'r' and relnamespace = 'public'::regnamespace)`).Scan(&rows); err != nil || rows != 4 {
		t.Fatalf("restored %d tables (%v), want 4", rows, err)
	}
	for _, s := range said {
		if strings.HasPrefix(s, "pg_restore (") {
			return s
		}
	}
	return strings.Join(said, "\n")
}

// One transaction is chosen for a tar archive, one big table or one core,
// never for an archive that makes more objects than its locks allow, and
// never when the target's jobs setting is given.
func TestChooseLoad(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		format  string
		share   float64
		entries int
		jobs    int
		single  bool
		args    string
	}{
		{drills.FormatCustom, 0.97, 20, 0, true, "--single-transaction"},
		{drills.FormatCustom, 0.5, 20, 0, runtime.NumCPU() == 1, ""},
		{drills.FormatTar, 0.1, 20, 0, true, "--single-transaction"},
		{drills.FormatCustom, 0.97, 20_000, 0, false, ""},
		{drills.FormatTar, 0.97, 20_000, 0, false, ""},
		{drills.FormatCustom, 0.97, 20, 3, false, "--jobs 3"},
		{drills.FormatTar, 0.97, 20, 3, false, ""},
	} {
		single, args := local.ChooseLoad(tc.format, tc.share, tc.entries, tc.jobs)
		if single != tc.single || tc.args != "" && strings.Join(args, " ") != tc.args {
			t.Errorf("%s, %.0f%% in one table, %d entries, jobs %d: single %v %v; want single %v %s", tc.format, tc.share*100, tc.entries, tc.jobs, single, args, tc.single, tc.args)
		}
	}
}
