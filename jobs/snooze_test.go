package jobs_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"drill/drills"
	"drill/drills/backends"
	"drill/drills/drilltest"
	"drill/drills/local"
	"drill/drills/pgdump"
	"drill/jobs"
)

// A drill whose instance takes a while snoozes its job instead of holding
// the worker: with one worker slot, another drill runs to completion while
// the first waits, and the first then resumes and passes.
func TestWaitingRunSnoozesAndFreesTheWorker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	backups := drilltest.BackupDir(t)
	drilltest.DumpAs(t, drilltest.Shop(t), "custom", filepath.Join(backups, "shop.dump"))
	slowSpec := &drills.Spec{Name: "slow", Timeout: 5 * time.Minute,
		Source: pgdump.Spec(backups),
		Target: local.Spec(b.targetDir)}
	fastSpec := *slowSpec
	fastSpec.Name = "fast"
	cfg := &drills.Config{Drills: []*drills.Spec{slowSpec, &fastSpec}}
	slow := &drilltest.SlowTarget{Target: b.target, Waits: 3, After: 2 * time.Second}
	client, err := jobs.NewWorkerClient(jobs.Config{Drills: cfg, Store: b.store, Concurrency: 1, StaleAfter: 6 * time.Second,
		Backends: func(ctx context.Context, spec *drills.Spec) (drills.Source, drills.Target, error) {
			src, err := backends.Source(ctx, spec)
			if spec.Name == "slow" {
				return src, slow, err
			}
			return src, b.target, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Concurrency 1: one drill at a time. Only a snooze lets "fast" run
	// while "slow" waits.
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.Background()) })
	slowRun, err := jobs.Enqueue(ctx, b.store, client, slowSpec, drills.PolicyOf(slowSpec, "", ""), drills.TriggerManual, "test")
	if err != nil {
		t.Fatal(err)
	}
	drilltest.WaitFor(t, 30*time.Second, "the slow run to start waiting", func() bool {
		r, _ := b.store.Run(ctx, slowRun.ID)
		return r.WaitingUntil != nil
	})
	fastRun, err := jobs.Enqueue(ctx, b.store, client, &fastSpec, drills.PolicyOf(&fastSpec, "", ""), drills.TriggerManual, "test")
	if err != nil {
		t.Fatal(err)
	}
	drilltest.WaitFor(t, time.Minute, "both runs to finish", func() bool {
		s, _ := b.store.Run(ctx, slowRun.ID)
		f, _ := b.store.Run(ctx, fastRun.ID)
		return s.FinishedAt != nil && f.FinishedAt != nil
	})
	s, _ := b.store.Run(ctx, slowRun.ID)
	f, _ := b.store.Run(ctx, fastRun.ID)
	if s.Status != drills.StatusPassed || f.Status != drills.StatusPassed {
		t.Fatalf("slow %s (%s), fast %s (%s)", s.Status, s.Error, f.Status, f.Error)
	}
	if !f.FinishedAt.Before(*s.FinishedAt) {
		t.Fatalf("the fast drill finished after the slow one: the waiting run held the worker")
	}
	if got := slow.Calls(s.Target.InstanceID); got != 4 {
		t.Fatalf("%d provision calls, want 4 (3 waits, then ready)", got)
	}
	if len(s.Phases) != 5 || s.Phases[1].Name != drills.PhaseProvision || s.Phases[1].Duration() < 6*time.Second {
		t.Fatalf("provision should be one phase spanning the waits: %+v", s.Phases)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

// An overdue drill is posted to its webhooks once per overdue spell.
func TestOverdueNotification(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var mu sync.Mutex
	var got []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	spec := drilltest.SeedSpec("nightly")
	spec.Schedule = "daily"
	spec.Notify = []drills.Notify{{Webhook: hook.URL}}
	drilltest.SeedRun(t, b.store, drilltest.SeedOpts{Spec: spec, Started: time.Now().Add(-4 * 24 * time.Hour), RTO: time.Minute, RPO: time.Hour})
	cfg := &drills.Config{Drills: []*drills.Spec{spec}, OverdueGrace: 24 * time.Hour}
	client, err := jobs.NewWorkerClient(jobs.Config{Drills: cfg, Store: b.store, SweepEvery: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.Background()) })
	drilltest.WaitFor(t, 30*time.Second, "the overdue notice", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})
	time.Sleep(3 * time.Second) // several more sweeps: no second notice for the same spell
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0]["event"] != "drill_overdue" || !strings.Contains(got[0]["text"].(string), "nightly* is overdue") {
		t.Fatalf("notices %v", got)
	}
}
