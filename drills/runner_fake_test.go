package drills_test

// The Runner's phase machine against a recorder in memory and backends
// that do what each test says: every path in milliseconds (the verify
// phase still connects to the test server). The tests in runner_test.go
// run the same machine end to end on real PostgreSQL and real backups.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"drill/drills"
	"drill/drills/drilltest"
	"drill/verify"
)

// memRecorder is a drills.Recorder in memory. failOn makes one method fail.
type memRecorder struct {
	mu      sync.Mutex
	nextID  int64
	runs    map[int64]*drills.Run
	calls   []string
	failOn  string
	intents int
	logs    []string // each restore log written
}

var errRecorder = errors.New("recorder down")

func (m *memRecorder) call(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, name)
	if m.failOn == name {
		return errRecorder
	}
	return nil
}

func (m *memRecorder) ID(context.Context) (string, error) { return "mem", m.call("ID") }

func (m *memRecorder) CreateRun(_ context.Context, p drills.CreateRunParams) (*drills.Run, error) {
	if err := m.call("CreateRun"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nextID++
	r := &drills.Run{ID: m.nextID, Drill: p.Spec.Name, Status: p.Status, Trigger: p.Trigger, Policy: p.Policy, CreatedAt: time.Now()}
	if m.runs == nil {
		m.runs = map[int64]*drills.Run{}
	}
	m.runs[r.ID] = r
	return r, nil
}

func (m *memRecorder) StartRun(context.Context, int64, time.Time, time.Time, drills.Executor) error {
	return m.call("StartRun")
}
func (m *memRecorder) Heartbeat(context.Context, int64, time.Time) error { return m.call("Heartbeat") }
func (m *memRecorder) StartPhase(_ context.Context, _ int64, _ int, name drills.Phase, _ time.Time) error {
	return m.call("StartPhase " + string(name))
}
func (m *memRecorder) FinishPhase(context.Context, int64, int, time.Time, string) error {
	return m.call("FinishPhase")
}
func (m *memRecorder) SetBackup(context.Context, int64, drills.Backup) error {
	return m.call("SetBackup")
}
func (m *memRecorder) RecordTargetIntent(ctx context.Context, _ drills.Instance, hook drills.IntentHook) (int64, error) {
	if err := m.call("RecordTargetIntent"); err != nil {
		return 0, err
	}
	m.mu.Lock()
	m.intents++
	id := int64(m.intents)
	m.mu.Unlock()
	if hook != nil {
		return id, hook(ctx, nil, id)
	}
	return id, nil
}
func (m *memRecorder) SetTargetState(_ context.Context, _ int64, _ drills.Instance, state drills.TargetState, _ time.Time, _ string) error {
	return m.call("SetTargetState " + string(state))
}
func (m *memRecorder) SetProgress(context.Context, int64, string, time.Time) error { return nil }
func (m *memRecorder) SetRestoreLog(_ context.Context, _ int64, log string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.logs = append(m.logs, log)
	return nil
}
func (m *memRecorder) SetTables(context.Context, int64, []verify.TableInfo) error { return nil }
func (m *memRecorder) LastInventory(context.Context, string, int64) (*verify.Inventory, error) {
	return nil, nil
}
func (m *memRecorder) AddCheck(context.Context, int64, int, drills.Check, drills.CheckResult) error {
	return m.call("AddCheck")
}
func (m *memRecorder) SetWaiting(context.Context, int64, time.Time) error {
	return m.call("SetWaiting")
}
func (m *memRecorder) ClearWaiting(context.Context, int64, time.Time) error {
	return m.call("ClearWaiting")
}
func (m *memRecorder) FinishRun(context.Context, int64, drills.Outcome) error {
	return m.call("FinishRun")
}
func (m *memRecorder) RunSeal(context.Context, *drills.Run) (*drills.SealState, error) {
	return nil, nil
}

func (m *memRecorder) saw(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.calls {
		if c == name {
			return true
		}
	}
	return false
}

// fakeSource has one backup, made an hour ago.
type fakeSource struct{ err error }

func (s fakeSource) Latest(context.Context) (drills.Backup, error) {
	return drills.Backup{ID: "mem://backup", CreatedAt: time.Now().Add(-time.Hour), Format: "custom"}, s.err
}

// fakeTarget does what its funcs say and counts what it was asked.
type fakeTarget struct {
	dsn       string
	mu        sync.Mutex
	provision func(ctx context.Context, calls int) error
	restore   func(ctx context.Context) error
	provided  int
	destroyed int
}

func (t *fakeTarget) Plan(run drills.RunRef) (drills.Instance, error) {
	return drills.Instance{Type: "mem", ID: fmt.Sprintf("mem-%d", run.ID), RunID: run.ID, Drill: run.Drill, Details: map[string]string{}}, nil
}

func (t *fakeTarget) Provision(ctx context.Context, _ *drills.Instance, _ drills.Backup, _ drills.Progress) error {
	t.mu.Lock()
	t.provided++
	n := t.provided
	t.mu.Unlock()
	if t.provision != nil {
		return t.provision(ctx, n)
	}
	return nil
}

func (t *fakeTarget) Restore(ctx context.Context, in *drills.Instance, _ drills.Backup, _ drills.Progress) error {
	in.DSN = t.dsn // the verify phase connects to it (no checks run)
	if t.restore != nil {
		return t.restore(ctx)
	}
	return nil
}

func (t *fakeTarget) Destroy(context.Context, drills.Instance) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.destroyed++
	return nil
}

func (t *fakeTarget) ConnectHint(drills.Instance) string { return "" }

// withDSN gives targets the test server to hand the verify phase.
func withDSN(t *testing.T, tgt *fakeTarget) *fakeTarget {
	tgt.dsn = drilltest.ServerURL(t)
	return tgt
}

func memSpec(timeout time.Duration) *drills.Spec {
	return &drills.Spec{Name: "mem", Timeout: timeout, Source: drills.SourceSpec{Type: "mem"}, Target: drills.TargetSpec{Type: "mem"}}
}

func runMem(t *testing.T, ctx context.Context, rec *memRecorder, src drills.Source, tgt *fakeTarget, timeout time.Duration) (*drills.Run, error) {
	t.Helper()
	spec := memSpec(timeout)
	r := &drills.Runner{Store: rec}
	return r.Run(ctx, drills.RunParams{Spec: spec, Source: src, Target: tgt, Policy: drills.PolicyOf(spec, "", ""), Trigger: drills.TriggerManual})
}

func TestRunnerPaths(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		src       drills.Source
		tgt       *fakeTarget
		timeout   time.Duration
		cancelIn  time.Duration
		status    drills.Status
		reason    drills.Reason
		destroyed int
	}{
		{name: "passes", src: fakeSource{}, tgt: &fakeTarget{}, status: drills.StatusPassed, destroyed: 1},
		{name: "no backup", src: fakeSource{err: drills.ErrNoBackup}, tgt: &fakeTarget{}, status: drills.StatusFailed, reason: drills.ReasonNoBackup},
		{name: "provision fails", src: fakeSource{}, tgt: &fakeTarget{provision: func(context.Context, int) error { return errors.New("no disk") }},
			status: drills.StatusFailed, reason: drills.ReasonProvisionFailed, destroyed: 1},
		{name: "restore fails", src: fakeSource{}, tgt: &fakeTarget{restore: func(context.Context) error { return errors.New("bad archive") }},
			status: drills.StatusFailed, reason: drills.ReasonRestoreFailed, destroyed: 1},
		{name: "timeout", src: fakeSource{}, tgt: &fakeTarget{restore: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
			timeout: 50 * time.Millisecond, status: drills.StatusFailed, reason: drills.ReasonTimeout, destroyed: 1},
		{name: "interrupted", src: fakeSource{}, tgt: &fakeTarget{restore: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
			cancelIn: 50 * time.Millisecond, status: drills.StatusFailed, reason: drills.ReasonInterrupted, destroyed: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			if c.cancelIn > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				time.AfterFunc(c.cancelIn, cancel)
			}
			timeout := c.timeout
			if timeout == 0 {
				timeout = time.Minute
			}
			rec := &memRecorder{}
			run, err := runMem(t, ctx, rec, c.src, withDSN(t, c.tgt), timeout)
			if err != nil {
				t.Fatal(err)
			}
			if run.Status != c.status || run.Reason != c.reason {
				t.Errorf("status %s reason %q (%s), want %s %q", run.Status, run.Reason, run.Error, c.status, c.reason)
			}
			if c.tgt.destroyed != c.destroyed {
				t.Errorf("destroyed %d times, want %d", c.tgt.destroyed, c.destroyed)
			}
			if !rec.saw("FinishRun") {
				t.Error("the outcome was not recorded")
			}
			if c.destroyed > 0 && !rec.saw("SetTargetState destroyed") {
				t.Error("the teardown was not recorded")
			}
		})
	}
}

// A recorder that fails mid-run: the run cannot be recorded (ErrStore),
// and what was created is torn down all the same.
func TestRunnerRecorderFailureStillTearsDown(t *testing.T) {
	t.Parallel()
	rec := &memRecorder{failOn: "StartPhase verify"}
	tgt := withDSN(t, &fakeTarget{})
	_, err := runMem(t, context.Background(), rec, fakeSource{}, tgt, time.Minute)
	if !errors.Is(err, drills.ErrStore) {
		t.Fatalf("error %v, want ErrStore", err)
	}
	if tgt.destroyed != 1 {
		t.Fatalf("destroyed %d times, want 1", tgt.destroyed)
	}
}

// A target that is not ready yet snoozes the run (Runner.Snooze), which
// resumes where it stopped: the instance is provisioned on, not again.
func TestRunnerSnoozesAndResumes(t *testing.T) {
	t.Parallel()
	rec := &memRecorder{}
	tgt := withDSN(t, &fakeTarget{provision: func(_ context.Context, calls int) error {
		if calls == 1 {
			return drills.Wait(time.Second, "creating")
		}
		return nil
	}})
	spec := memSpec(time.Minute)
	r := &drills.Runner{Store: rec, Snooze: true}
	ctx := context.Background()
	run, err := rec.CreateRun(ctx, drills.CreateRunParams{Spec: spec, Policy: drills.PolicyOf(spec, "", ""), Status: drills.StatusQueued, Trigger: drills.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	p := drills.RunParams{Spec: spec, Source: fakeSource{}, Target: tgt, Policy: run.Policy, Trigger: run.Trigger}
	run, err = r.Execute(ctx, run, p)
	var waiting *drills.Waiting
	if !errors.As(err, &waiting) || waiting.After != time.Second || run.WaitingUntil == nil || !rec.saw("SetWaiting") {
		t.Fatalf("first pass: %v, waiting until %v", err, run.WaitingUntil)
	}
	if tgt.destroyed != 0 {
		t.Fatal("a snoozing run's instance was destroyed")
	}
	run, err = r.Execute(ctx, run, p)
	if err != nil || run.Status != drills.StatusPassed {
		t.Fatalf("resumed: %v, status %s %s", err, run.Status, run.Error)
	}
	if tgt.provided != 2 || tgt.destroyed != 1 || !rec.saw("ClearWaiting") {
		t.Fatalf("provisioned %d times, destroyed %d times", tgt.provided, tgt.destroyed)
	}
	if n := countCalls(rec, "RecordTargetIntent"); n != 1 {
		t.Fatalf("target intent recorded %d times, want once", n)
	}
}

func countCalls(m *memRecorder, name string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.calls {
		if c == name {
			n++
		}
	}
	return n
}

// A run whose check failed has no RTO, but says when a restored copy was there.
func TestRestoredAfter(t *testing.T) {
	start := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)
	at := func(s int) *time.Time { v := start.Add(time.Duration(s) * time.Second); return &v }
	r := &drills.Run{StartedAt: &start, Phases: []drills.PhaseRecord{
		{Name: drills.PhaseLocate, StartedAt: start, FinishedAt: at(1)},
		{Name: drills.PhaseRestore, StartedAt: *at(1), FinishedAt: at(3)},
		{Name: drills.PhaseVerify, StartedAt: *at(3), FinishedAt: at(4), Error: "1 of 1 checks failed"},
	}}
	if d := r.RestoredAfter(); d == nil || *d != 3*time.Second {
		t.Fatalf("restored after %v, want 3s", d)
	}
	r.Phases[1].Error = "restore failed"
	if d := r.RestoredAfter(); d != nil {
		t.Fatalf("a failed restore gave a restored copy after %v", *d)
	}
}

// loggingTarget is a fakeTarget whose restore prints lines as it goes, as
// pg_restore does.
type loggingTarget struct {
	*fakeTarget
	mu    sync.Mutex
	lines []string
}

func (t *loggingTarget) RestoreLogSoFar(drills.Instance) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

func (t *loggingTarget) RestoreLog(in drills.Instance) string { return t.RestoreLogSoFar(in) }

// While a restore runs, what it printed so far is written for the run
// page, as it grows; when it ends, the whole log is (not parallel: it sets
// how often).
func TestRunnerWritesTheRestoreLogAsItGrows(t *testing.T) {
	defer drills.SetLiveLogEvery(10 * time.Millisecond)()
	rec := &memRecorder{}
	tgt := &loggingTarget{fakeTarget: withDSN(t, &fakeTarget{})}
	written := func() int {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.logs)
	}
	tgt.restore = func(ctx context.Context) error {
		for i := range 10 {
			tgt.mu.Lock()
			tgt.lines = append(tgt.lines, fmt.Sprintf("pg_restore: processing item %d", i))
			tgt.mu.Unlock()
			if i == 4 { // half way, the log so far is written, however slow the machine
				drilltest.WaitFor(t, 10*time.Second, "a live write of the restore log", func() bool { return written() > 0 })
			}
		}
		return nil
	}
	spec := memSpec(time.Minute)
	run, err := (&drills.Runner{Store: rec}).Run(context.Background(), drills.RunParams{Spec: spec, Source: fakeSource{}, Target: tgt,
		Policy: drills.PolicyOf(spec, "", ""), Trigger: drills.TriggerManual})
	if err != nil || run.Status != drills.StatusPassed {
		t.Fatalf("run: %v %+v", err, run)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.logs) < 2 || strings.Count(rec.logs[0], "\n") >= 9 || strings.Count(rec.logs[len(rec.logs)-1], "\n") != 9 {
		t.Fatalf("logs written: %q; want a part while it ran, then the whole", rec.logs)
	}
}
