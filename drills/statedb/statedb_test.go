package statedb_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"drill/drills"
	"drill/drills/drilltest"
	"drill/drills/statedb"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(drilltest.Main(m)) }

// A search_path in the shell's PGOPTIONS does not move drill's tables:
// they are made, and found, where the server's own settings put them
// (public here); options in the URL are honoured (not parallel: the
// environment).
func TestPGOPTIONSDoesNotMoveTheState(t *testing.T) {
	url := drilltest.NewDatabase(t)
	drilltest.Exec(t, url, "create schema elsewhere")
	ctx := context.Background()
	for _, options := range []string{"-c search_path=elsewhere", "-c search_path=nonexistent", ""} {
		t.Setenv("PGOPTIONS", options)
		s, err := statedb.Open(ctx, url, statedb.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Migrate(ctx); err != nil {
			s.Close()
			t.Fatalf("PGOPTIONS=%q: migrate: %v", options, err)
		}
		var where string
		err = s.Pool.QueryRow(ctx, "select table_schema from information_schema.tables where table_name = 'drill_runs'").Scan(&where)
		s.Close()
		if err != nil || where != "public" {
			t.Fatalf("PGOPTIONS=%q: drill_runs in %q (%v), want public", options, where, err)
		}
	}
	other := drilltest.NewDatabase(t)
	drilltest.Exec(t, other, "create schema elsewhere")
	t.Setenv("PGOPTIONS", "-c search_path=public")
	s, err := statedb.Open(ctx, other+" options='-c search_path=elsewhere'", statedb.Options{}) // a key=value URL
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var where string
	if err := s.Pool.QueryRow(ctx, "select table_schema from information_schema.tables where table_name = 'drill_runs'").Scan(&where); err != nil || where != "elsewhere" {
		t.Fatalf("options in the URL: drill_runs in %q (%v), want elsewhere", where, err)
	}
}

// A process stopped long enough for the sweeper to end its run, then
// resumed, writes nothing more to that run: its seal stands, its chain is
// not broken, and no instance is recorded (so none created) for it.
func TestEndedRunTakesNoMoreWrites(t *testing.T) {
	t.Parallel()
	s := drilltest.Store(t)
	ctx := context.Background()
	spec := &drills.Spec{Name: "ended", Timeout: time.Minute}
	run, err := s.CreateRun(ctx, drills.CreateRunParams{Spec: spec, Status: drills.StatusRunning, Trigger: drills.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := s.StartRun(ctx, run.ID, now, now.Add(time.Minute), drills.Executor{Worker: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := s.StartPhase(ctx, run.ID, 1, drills.PhaseRestore, now); err != nil {
		t.Fatal(err)
	}
	in := drills.Instance{RunID: run.ID, Type: "local", ID: "being-made"}
	tid, err := s.RecordTargetIntent(ctx, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.FailUnfinished(ctx, run.ID, drills.ReasonInterrupted, "its process stopped beating", now.Add(time.Second)); !ok || err != nil {
		t.Fatalf("the sweeper's end: %v %v", ok, err)
	}
	sealed, err := s.Run(ctx, run.ID)
	if err != nil || sealed.Seal == nil {
		t.Fatalf("sealed run: %v %+v", err, sealed)
	}
	later := now.Add(2 * time.Second)
	writes := map[string]error{
		"start":       s.StartRun(ctx, run.ID, later, later.Add(time.Minute), drills.Executor{Worker: "test"}),
		"phase start": s.StartPhase(ctx, run.ID, 2, drills.PhaseVerify, later),
		"phase end":   s.FinishPhase(ctx, run.ID, 1, later, ""),
		"backup":      s.SetBackup(ctx, run.ID, drills.Backup{ID: "other", CreatedAt: later}),
		"check":       s.AddCheck(ctx, run.ID, 1, drills.Check{Type: "sql"}, drills.CheckResult{Name: "late", Passed: true}),
		"restore log": s.SetRestoreLog(ctx, run.ID, "late"),
		"tables":      s.SetTables(ctx, run.ID, nil),
		"outcome":     s.FinishRun(ctx, run.ID, drills.Outcome{Status: drills.StatusFailed, Reason: drills.ReasonRestoreFailed, FinishedAt: later}),
	}
	_, intentErr := s.RecordTargetIntent(ctx, drills.Instance{RunID: run.ID, Type: "local", ID: "late"}, nil)
	writes["target intent"] = intentErr
	// the instance's life goes on (the sweeper tears it down), but its
	// creation time, sealed with the run, is not set after the end
	if err := s.SetTargetState(ctx, tid, in, drills.TargetCreated, later, ""); err != nil {
		t.Fatal(err)
	}
	for what, err := range writes {
		if !errors.Is(err, drills.ErrRunEnded) {
			t.Errorf("%s on an ended run: %v, want ErrRunEnded", what, err)
		}
	}
	after, err := s.Run(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Seal.ChainHash != sealed.Seal.ChainHash || after.Reason != drills.ReasonInterrupted || after.Seal.Integrity != drills.IntegrityChained ||
		len(after.Checks) != 0 || after.Target == nil || after.Target.InstanceID != "being-made" || after.Target.State != drills.TargetCreated {
		t.Fatalf("the ended run changed: reason %s integrity %s (%s) checks %d target %v", after.Reason, after.Seal.Integrity, after.Seal.Problem, len(after.Checks), after.Target)
	}
}

// queryCounter counts the queries a store sends.
type queryCounter struct{ n atomic.Int64 }

func (c *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// The statuses of all drills (every page, /api/drills, each metrics
// scrape) take a fixed few queries however many drills there are, with a
// sealing key and runs from before it (whose history must be read).
func TestDrillStatusesTakeAFixedFewQueries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := drilltest.NewDatabase(t)
	var count queryCounter
	s, err := statedb.Open(ctx, url, statedb.Options{Tracer: &count})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var names []string
	queries := map[int]int64{}
	_, key, _ := ed25519.GenerateKey(nil)
	for i := range 8 {
		name := fmt.Sprintf("drill%d", i)
		names = append(names, name)
		s.SealingKey = nil // runs from before the sealing key: their history is read
		drilltest.SeedRun(t, s, drilltest.SeedOpts{Spec: drilltest.SeedSpec(name), Started: time.Now().Add(-time.Hour), RTO: time.Minute, RPO: time.Hour})
		if i == 0 || i == 7 {
			s.SealingKey = key
			count.n.Store(0)
			statuses, err := s.DrillStatuses(ctx, names)
			if err != nil || statuses[name].LastRun == nil || statuses[name].LastRun.Seal.Integrity != drills.IntegrityChained {
				t.Fatalf("statuses: %v %+v", err, statuses[name])
			}
			queries[i+1] = count.n.Load()
		}
	}
	if queries[1] != queries[8] || queries[8] > 7 {
		t.Fatalf("queries for 1 drill: %d, for 8: %d; want the same, at most 7", queries[1], queries[8])
	}
}
