package local_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"drill/drills"
	"drill/drills/drilltest"
	"drill/drills/local"

	"github.com/jackc/pgx/v5"
)

// provision makes and starts a throwaway cluster of target, and returns
// how long it took; cleanup destroys it.
func provision(t testing.TB, tgt *local.Target, run int64) time.Duration {
	t.Helper()
	in, err := tgt.Plan(drills.RunRef{ID: run, Drill: "tpl", Deadline: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := tgt.Provision(context.Background(), &in, drills.Backup{}, nil); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	c := tgt.Cluster(in)
	conn, err := pgx.Connect(context.Background(), c.SocketDSNAs(local.CheckRole, "postgres"))
	if err != nil {
		t.Fatalf("connect as the check role: %v", err)
	}
	conn.Close(context.Background())
	if err := tgt.Destroy(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	return took
}

// Clusters copied from a template work like initdb's, and several drills
// making the template at once each end with a whole one and share it.
func TestTemplateProvisioning(t *testing.T) {
	t.Parallel()
	dir, templates := drilltest.SharedDir(t), filepath.Join(drilltest.SharedDir(t), "templates")
	tgt, err := local.NewTarget(local.TargetConfig{Dir: dir, TemplateDir: templates})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			provision(t, tgt, int64(i+1))
		}()
	}
	wg.Wait()
	tpls, spares := templatesIn(t, templates)
	if len(tpls) != 1 || len(spares) == 0 {
		t.Fatalf("templates %v, spares %v: want one template and its spares", tpls, spares)
	}
	if fi, err := os.Stat(templates); err != nil || fi.Mode().Perm() != 0o711 {
		t.Fatalf("templates directory mode %v: the clusters' user must not list or change it", fi.Mode())
	}
	drilltest.AssertNothingLeft(t, dir)
}

// templatesIn lists the templates and the spare copies under root.
func templatesIn(t *testing.T, root string) (templates, spares []string) {
	t.Helper()
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch {
		case strings.HasPrefix(e.Name(), ".spare-"+tplName(t, root)+"-"):
			spares = append(spares, e.Name())
		case !strings.HasPrefix(e.Name(), "."):
			templates = append(templates, e.Name())
		default:
			t.Errorf("unexpected %s in the templates directory", e.Name())
		}
	}
	return templates, spares
}

func ownerOf(t *testing.T, path string) int {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return int(st.Uid)
}

// tplName is the one template under root.
func tplName(t *testing.T, root string) string {
	m, _ := filepath.Glob(filepath.Join(root, "pg*"))
	if len(m) != 1 {
		t.Fatalf("templates under %s: %v", root, m)
	}
	return filepath.Base(m[0])
}

// A drill leaves a spare copy of the template behind, made while it
// restores; the next drill takes it (nothing copied while its clock runs)
// and leaves a new one. A spare's name cannot be guessed; a target
// directory on another file system makes no spares.
func TestSpareCopies(t *testing.T) {
	t.Parallel()
	dir, templates := drilltest.SharedDir(t), filepath.Join(drilltest.SharedDir(t), "templates")
	tgt, err := local.NewTarget(local.TargetConfig{Dir: dir, TemplateDir: templates})
	if err != nil {
		t.Fatal(err)
	}
	provision(t, tgt, 1)
	_, first := templatesIn(t, templates)
	if len(first) != 1 || len(first[0]) < len(".spare-")+len(tplName(t, templates))+20 {
		t.Fatalf("spares after one drill: %v, want one with a long random name", first)
	}
	// the template and the spare are drill's own, not the clusters' user's
	for _, d := range []string{tplName(t, templates), first[0]} {
		if owner := ownerOf(t, filepath.Join(templates, d, "base")); owner != os.Geteuid() {
			t.Errorf("%s belongs to uid %d, not to drill's user", d, owner)
		}
	}
	provision(t, tgt, 2)
	_, second := templatesIn(t, templates)
	if len(second) != 1 || second[0] == first[0] {
		t.Fatalf("spares after the second drill: %v (first %v): the second drill should take the spare and leave a new one", second, first)
	}
	drilltest.AssertNothingLeft(t, dir)

	// a spare that is not drill's own is removed, never run
	sandbox, _, err := local.LookupSandbox("")
	if err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(templates, ".spare-"+tplName(t, templates)+"-PLANTEDBYTHECLUSTERSUSER")
	if err := os.Rename(filepath.Join(templates, second[0]), planted); err != nil {
		t.Fatal(err)
	}
	// one that would not start: a drill that took it would fail
	if err := os.Remove(filepath.Join(planted, "PG_VERSION")); err != nil {
		t.Fatal(err)
	}
	if err := filepath.WalkDir(planted, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(sandbox.UID), int(sandbox.GID))
	}); err != nil {
		t.Fatal(err)
	}
	provision(t, tgt, 4)
	if _, err := os.Stat(planted); !os.IsNotExist(err) {
		t.Errorf("a spare of the clusters' user is still there (%v)", err)
	}
	drilltest.AssertNothingLeft(t, dir)
	_, second = templatesIn(t, templates)

	shm, err := os.MkdirTemp("/dev/shm", "drilltest-")
	if err != nil {
		t.Skipf("no tmpfs to stand for another file system: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	if err := os.Chmod(shm, 0o711); err != nil {
		t.Fatal(err)
	}
	other, err := local.NewTarget(local.TargetConfig{Dir: shm, TemplateDir: templates})
	if err != nil {
		t.Fatal(err)
	}
	provision(t, other, 3)
	if _, third := templatesIn(t, templates); len(third) != 1 || third[0] != second[0] {
		t.Fatalf("spares after a drill on another file system: %v, want %v untouched", third, second)
	}
	drilltest.AssertNothingLeft(t, shm)
}

// BenchmarkProvision measures provisioning (the spare copy of the
// template the previous drill left, then start) against initdb then
// start, in the same run ("x-initdb"; goal: provision ≤ 0.3 s).
func BenchmarkProvision(b *testing.B) {
	dir := drilltest.SharedDir(b)
	withTemplate, err := local.NewTarget(local.TargetConfig{Dir: dir, TemplateDir: filepath.Join(drilltest.SharedDir(b), "templates")})
	if err != nil {
		b.Fatal(err)
	}
	withInitdb, err := local.NewTarget(local.TargetConfig{Dir: dir, TemplateDir: "-"})
	if err != nil {
		b.Fatal(err)
	}
	provision(b, withTemplate, 1) // makes the template
	var tpl, initdb time.Duration
	run := int64(1)
	for b.Loop() {
		run++
		tpl += provision(b, withTemplate, run)
		run++
		initdb += provision(b, withInitdb, run)
	}
	n := float64(b.N)
	b.ReportMetric(tpl.Seconds()/n*1000, "template-ms/op")
	b.ReportMetric(initdb.Seconds()/n*1000, "initdb-ms/op")
	b.ReportMetric(tpl.Seconds()/initdb.Seconds(), "x-initdb")
}
