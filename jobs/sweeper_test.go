package jobs_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"drill/drills"
	"drill/drills/drilltest"
	"drill/drills/local"
	"drill/drills/pgdump"
	"drill/drills/statedb"
	"drill/jobs"
)

func TestMain(m *testing.M) { os.Exit(drilltest.Main(m)) }

type bundle struct {
	store     *statedb.Store
	cfg       *drills.Config
	targetDir string
	target    *local.Target
}

func setup(t *testing.T) bundle {
	t.Helper()
	b := bundle{store: drilltest.Store(t), targetDir: drilltest.SharedDir(t)}
	var err error
	b.target, err = local.NewTarget(local.TargetConfig{Dir: b.targetDir})
	if err != nil {
		t.Fatal(err)
	}
	b.cfg = &drills.Config{Drills: []*drills.Spec{{Name: "shop", Timeout: time.Hour,
		Source: pgdump.Spec("/nonexistent"),
		Target: local.Spec(b.targetDir)}}}
	return b
}

// provision makes a real, running instance for run id of this store (or another).
func (b bundle) provision(t *testing.T, runID int64, storeID string) drills.Instance {
	t.Helper()
	in, err := b.target.Plan(drills.RunRef{ID: runID, Drill: "shop", StoreID: storeID})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.target.Provision(context.Background(), &in, drills.Backup{}, nil); err != nil {
		t.Fatal(err)
	}
	return in
}

func (b bundle) sweep(t *testing.T) jobs.SweepReport {
	t.Helper()
	rep, err := jobs.NewSweeper(jobs.Config{Drills: b.cfg, Store: b.store, StaleAfter: time.Minute}, nil).Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// An instance with this store's marks and no record is removed; one with
// another installation's marks, and a look-alike without marks, are not.
func TestSweepOrphansOnlyWithOurMarks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	storeID, err := b.store.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	orphan := b.provision(t, 4242, storeID)
	foreign := b.provision(t, 4242, "another-installation")
	t.Cleanup(func() { _ = b.target.Destroy(ctx, foreign) })
	lookalike := filepath.Join(b.targetDir, "drill-shop-7-abcdef")
	if err := os.MkdirAll(filepath.Join(lookalike, "data"), 0o700); err != nil {
		t.Fatal(err)
	}

	rep := b.sweep(t)
	if len(rep.OrphansRemoved) != 1 || rep.OrphansRemoved[0] != orphan.ID {
		t.Fatalf("orphans removed %v, want only %s (errors %v)", rep.OrphansRemoved, orphan.ID, rep.Errors)
	}
	if procs := drilltest.ProcessesMentioning(orphan.ID); len(procs) > 0 {
		t.Fatalf("orphan still running: %v", procs)
	}
	for _, keep := range []string{foreign.ID, lookalike} {
		if _, err := os.Stat(keep); err != nil {
			t.Fatalf("%s was touched: %v", keep, err)
		}
	}
	if procs := drilltest.ProcessesMentioning(foreign.ID); len(procs) == 0 {
		t.Fatal("another installation's instance was stopped")
	}
}

// A run whose process died (stale heartbeat) is ended as interrupted and
// its recorded target destroyed.
func TestSweepStaleRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	spec := b.cfg.Drills[0]
	run, err := b.store.CreateRun(ctx, drills.CreateRunParams{Spec: spec, Policy: drills.PolicyOf(spec, "", ""), Status: drills.StatusQueued, Trigger: drills.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now().Add(-10 * time.Minute)
	if err := b.store.StartRun(ctx, run.ID, started, started.Add(time.Hour), drills.Executor{Worker: "dead/1"}); err != nil {
		t.Fatal(err)
	}
	storeID, _ := b.store.ID(ctx)
	in, err := b.target.Plan(drills.RunRef{ID: run.ID, Drill: "shop", StoreID: storeID})
	if err != nil {
		t.Fatal(err)
	}
	targetID, err := b.store.RecordTargetIntent(ctx, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.target.Provision(ctx, &in, drills.Backup{}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.store.SetTargetState(ctx, targetID, in, drills.TargetCreated, time.Now(), ""); err != nil {
		t.Fatal(err)
	}
	// A fresh heartbeat keeps it alive.
	if err := b.store.Heartbeat(ctx, run.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if rep := b.sweep(t); len(rep.RunsEnded) != 0 || len(rep.Destroyed) != 0 {
		t.Fatalf("a live run was swept: %+v", rep)
	}
	if err := b.store.Heartbeat(ctx, run.ID, time.Now().Add(-2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	rep := b.sweep(t)
	if len(rep.RunsEnded) != 1 || len(rep.Destroyed) != 1 || rep.Destroyed[0] != in.ID {
		t.Fatalf("sweep %+v", rep)
	}
	got, err := b.store.Run(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != drills.StatusFailed || got.Reason != drills.ReasonInterrupted || got.Target.State != drills.TargetDestroyed {
		t.Fatalf("run %s/%s target %+v", got.Status, got.Reason, got.Target)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

func TestScheduleStatusesOverdue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.cfg.OverdueGrace = 24 * time.Hour
	b.cfg.Drills[0].Schedule = "quarterly"
	daily := *b.cfg.Drills[0]
	daily.Name, daily.Schedule = "daily-one", "daily"
	never := *b.cfg.Drills[0]
	never.Name = "never-run"
	b.cfg.Drills = append(b.cfg.Drills, &daily, &never)
	// shop passed 10 days ago; daily-one passed 3 days ago.
	for name, age := range map[string]time.Duration{"shop": 10 * 24 * time.Hour, "daily-one": 3 * 24 * time.Hour} {
		spec := b.cfg.Drill(name)
		run, err := b.store.CreateRun(ctx, drills.CreateRunParams{Spec: spec, Policy: drills.PolicyOf(spec, "", ""), Status: drills.StatusRunning, Trigger: drills.TriggerSchedule})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.store.FinishRun(ctx, run.ID, drills.Outcome{Status: drills.StatusPassed, FinishedAt: time.Now().Add(-age)}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	st, err := jobs.ScheduleStatuses(ctx, b.store, b.cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"shop": false, "daily-one": true, "never-run": false}
	for _, s := range st {
		if s.Overdue != want[s.Drill] {
			t.Errorf("%s overdue = %v, want %v", s.Drill, s.Overdue, want[s.Drill])
		}
		if s.NextRunAt == nil || !s.NextRunAt.After(now) {
			t.Errorf("%s next run %v", s.Drill, s.NextRunAt)
		}
	}
	j, _ := json.Marshal(st[0].NextRunAt)
	if st[0].NextRunAt.UTC().Hour() != 3 || st[0].NextRunAt.UTC().Day() != 1 {
		t.Errorf("quarterly next run %s, want 03:00 UTC on the 1st", j)
	}
}

func TestParseScheduleQuarterly(t *testing.T) {
	t.Parallel()
	s, err := drills.ParseSchedule("quarterly", "")
	if err != nil {
		t.Fatal(err)
	}
	got := s.Upcoming(time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), 4)
	want := []string{"2027-01-01T03:00:00Z", "2027-04-01T03:00:00Z", "2027-07-01T03:00:00Z", "2027-10-01T03:00:00Z"}
	for i := range want {
		if got[i].Format(time.RFC3339) != want[i] {
			t.Errorf("tick %d = %s, want %s", i, got[i].Format(time.RFC3339), want[i])
		}
	}
	berlin, err := drills.ParseSchedule("0 3 * * *", "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	if next := berlin.Next(time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)); next.UTC().Hour() != 2 {
		t.Errorf("03:00 Berlin in winter is 02:00 UTC, got %s", next.UTC())
	}
	for _, bad := range []string{"sometimes", "61 * * * *", "CRON_TZ=UTC 0 3 * * *"} {
		if _, err := drills.ParseSchedule(bad, ""); err == nil {
			t.Errorf("ParseSchedule(%q): want an error", bad)
		}
	}
}
