package local_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
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
	entries, err := os.ReadDir(templates)
	if err != nil || len(entries) != 1 {
		t.Fatalf("templates %v (%v), want one", entries, err)
	}
	if fi, err := os.Stat(templates); err != nil || fi.Mode().Perm() != 0o711 {
		t.Fatalf("templates directory mode %v: the clusters' user must not list or change it", fi.Mode())
	}
	drilltest.AssertNothingLeft(t, dir)
}

// BenchmarkProvision measures provisioning (a copy of the template, then
// start) against initdb then start, in the same run ("x-initdb"; goal:
// provision ≤ 0.3 s).
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
