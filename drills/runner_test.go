package drills_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"drill/drills"
	"drill/drills/drilltest"
	"drill/drills/local"
	"drill/drills/pgdump"
	"drill/drills/statedb"
	"drill/verify"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(drilltest.Main(m)) }

type bundle struct {
	store     *statedb.Store
	shop      string // URL of the "production" database
	backups   string // backup directory
	targetDir string // where clusters are made
	target    *local.Target
}

func setup(t *testing.T) bundle {
	t.Helper()
	b := bundle{store: drilltest.Store(t), shop: drilltest.Shop(t), backups: drilltest.BackupDir(t), targetDir: drilltest.SharedDir(t)}
	var err error
	b.target, err = local.NewTarget(local.TargetConfig{Dir: b.targetDir, Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func i64(n int64) *int64   { return &n }
func str(s string) *string { return &s }

// shopSpec checks the Shop database with every check type.
func shopSpec(location string) *drills.Spec {
	return &drills.Spec{
		Name:       "shop",
		Timeout:    2 * time.Minute,
		Source:     pgdump.Spec(location),
		Target:     drills.TargetSpec{Type: local.TargetType},
		Objectives: drills.Objectives{RTO: 10 * time.Minute, RPO: 26 * time.Hour},
		Checks: []verify.Check{
			{Type: verify.TypeRowCount, Name: "orders", Table: "public.orders", Equals: i64(drilltest.ShopRows)},
			{Type: verify.TypeChecksum, Name: "orders checksum", Table: "public.orders"},
			{Type: verify.TypeChecksum, Name: "customers checksum", Table: "customers"},
			{Type: verify.TypeRecency, Name: "fresh orders", Table: "public.orders", Column: "created_at", MaxAge: 26 * time.Hour},
			{Type: verify.TypeSQL, Name: "no negative totals", Query: "select count(*) from orders where total < 0", Expect: str("0")},
		},
	}
}

// drill runs spec to the end and returns the stored record of the run.
func (b bundle) drill(t *testing.T, ctx context.Context, spec *drills.Spec, events func(drills.Event)) *drills.Run {
	t.Helper()
	return b.drillWith(t, ctx, spec, b.target, events)
}

// drillWith runs spec to the end on target.
func (b bundle) drillWith(t *testing.T, ctx context.Context, spec *drills.Spec, target drills.Target, events func(drills.Event)) *drills.Run {
	t.Helper()
	var settings pgdump.Settings
	if err := spec.Source.Decode(&settings); err != nil {
		t.Fatal(err)
	}
	src, err := pgdump.NewSource(ctx, pgdump.SourceConfig{Location: settings.Location, Endpoint: settings.Endpoint, Region: settings.Region})
	if err != nil {
		t.Fatal(err)
	}
	r := &drills.Runner{Store: b.store, Events: events}
	run, err := r.Run(ctx, drills.RunParams{Spec: spec, Source: src, Target: target, Policy: drills.PolicyOf(spec, "test", "test"), Trigger: drills.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := b.store.Run(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

func assertPassed(t *testing.T, run *drills.Run) {
	t.Helper()
	if run.Status != drills.StatusPassed {
		t.Fatalf("status %s (%s): %s", run.Status, run.Reason, run.Error)
	}
	if len(run.Checks) != 5 {
		t.Fatalf("%d checks recorded, want 5", len(run.Checks))
	}
	for _, c := range run.Checks {
		if !c.Passed {
			t.Errorf("check %s failed: %+v", c.Name, c)
		}
	}
	var names []string
	for _, p := range run.Phases {
		names = append(names, string(p.Name))
		if p.FinishedAt == nil || p.Error != "" {
			t.Errorf("phase %s: %+v", p.Name, p)
		}
	}
	if got := strings.Join(names, ","); got != "locate,provision,restore,verify,teardown" {
		t.Errorf("phases %s", got)
	}
	if run.RTO == nil || run.RPO == nil || run.DataRPO == nil || run.RTOMet == nil || !*run.RTOMet || run.RPOMet == nil || !*run.RPOMet {
		t.Errorf("RTO/RPO not measured: rto=%v rpo=%v data=%v", run.RTO, run.RPO, run.DataRPO)
	}
	// RTO runs from the start to the end of verify.
	verifyEnd := *run.Phases[3].FinishedAt
	if want := verifyEnd.Sub(*run.StartedAt); absDiff(*run.RTO, want) > 5*time.Millisecond {
		t.Errorf("RTO %s, want start→verify end %s", *run.RTO, want)
	}
	if want := run.StartedAt.Sub(run.Backup.CreatedAt); absDiff(*run.RPO, want) > time.Millisecond {
		t.Errorf("RPO %s, want start−backup %s", *run.RPO, want)
	}
	if run.Target == nil || run.Target.State != drills.TargetDestroyed || run.Target.TornDownAt == nil {
		t.Errorf("target not torn down: %+v", run.Target)
	}
}

func absDiff(a, b time.Duration) time.Duration {
	if a > b {
		return a - b
	}
	return b - a
}

func TestDrillEachFormat(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"custom", "tar", "directory", "plain", "plain-gzip"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			name := map[string]string{"custom": "shop.dump", "tar": "shop.tar", "directory": "shop.dir", "plain": "shop.sql", "plain-gzip": "shop.sql.gz"}[format]
			drilltest.DumpAs(t, b.shop, format, filepath.Join(b.backups, name))
			run := b.drill(t, context.Background(), shopSpec(b.backups), nil)
			assertPassed(t, run)
			if run.Backup.Format != format {
				t.Errorf("format %q, want %q", run.Backup.Format, format)
			}
			wantSource := "archive header"
			if strings.HasPrefix(format, "plain") {
				wantSource = "file mtime"
			}
			if run.Backup.CreatedAtSource != wantSource {
				t.Errorf("created_at from %q, want %q", run.Backup.CreatedAtSource, wantSource)
			}
			drilltest.AssertNothingLeft(t, b.targetDir)
		})
	}
}

func TestDrillPicksNewestBackup(t *testing.T) {
	t.Parallel()
	b := setup(t)
	old := drilltest.DumpAs(t, b.shop, "custom", filepath.Join(b.backups, "shop-old.dump"))
	drilltest.Touch(t, old, time.Now().Add(-48*time.Hour))
	drilltest.Exec(t, b.shop, "insert into orders values (999999, 1, 1, now())")
	drilltest.DumpAs(t, b.shop, "custom", filepath.Join(b.backups, "shop-new.dump"))
	spec := shopSpec(b.backups)
	spec.Checks[0].Equals = i64(drilltest.ShopRows + 1)
	run := b.drill(t, context.Background(), spec, nil)
	assertPassed(t, run)
	if !strings.HasSuffix(run.Backup.ID, "shop-new.dump") {
		t.Fatalf("restored %s, want the newest", run.Backup.ID)
	}
}

func TestDrillFailingRowCount(t *testing.T) {
	t.Parallel()
	b := setup(t)
	drilltest.DumpAs(t, b.shop, "custom", filepath.Join(b.backups, "shop.dump"))
	spec := shopSpec(b.backups)
	spec.Checks[0].Equals = i64(drilltest.ShopRows + 1)
	run := b.drill(t, context.Background(), spec, nil)
	if run.Status != drills.StatusFailed || run.Reason != drills.ReasonCheckFailed {
		t.Fatalf("got %s/%s, want failed/check_failed", run.Status, run.Reason)
	}
	if run.Checks[0].Passed || run.Checks[0].Actual != "2000" {
		t.Fatalf("row count check: %+v", run.Checks[0])
	}
	if !strings.Contains(run.Error, "1 of 5 checks failed") {
		t.Fatalf("error %q", run.Error)
	}
	if run.Target.State != drills.TargetDestroyed {
		t.Fatalf("target %s", run.Target.State)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

func TestDrillMissedObjective(t *testing.T) {
	t.Parallel()
	b := setup(t)
	path := drilltest.DumpAs(t, b.shop, "plain", filepath.Join(b.backups, "shop.sql"))
	drilltest.Touch(t, path, time.Now().Add(-30*time.Hour)) // plain dumps date from their mtime
	spec := shopSpec(b.backups)
	spec.Checks = spec.Checks[:1]
	run := b.drill(t, context.Background(), spec, nil)
	if run.Status != drills.StatusFailed || run.Reason != drills.ReasonObjectiveMissed {
		t.Fatalf("got %s/%s (%s), want failed/objective_missed", run.Status, run.Reason, run.Error)
	}
	if run.RPOMet == nil || *run.RPOMet || run.RTOMet == nil || !*run.RTOMet {
		t.Fatalf("rpo_met=%v rto_met=%v", run.RPOMet, run.RTOMet)
	}
	if !strings.Contains(run.Error, "RPO 30h") || !strings.Contains(run.Error, "objective 26h") {
		t.Fatalf("error %q", run.Error)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

func TestDrillTruncatedDump(t *testing.T) {
	t.Parallel()
	b := setup(t)
	drilltest.Exec(t, b.shop, "insert into orders select g, 1, 1, now() from generate_series(10000, 60000) g")
	path := drilltest.DumpAs(t, b.shop, "custom", filepath.Join(b.backups, "shop.dump"))
	fi, _ := os.Stat(path)
	if err := os.Truncate(path, fi.Size()*2/3); err != nil {
		t.Fatal(err)
	}
	run := b.drill(t, context.Background(), shopSpec(b.backups), nil)
	if run.Status != drills.StatusFailed || run.Reason != drills.ReasonRestoreFailed {
		t.Fatalf("got %s/%s (%s), want failed/restore_failed", run.Status, run.Reason, run.Error)
	}
	if len(run.Checks) != 0 {
		t.Fatalf("checks ran after a failed restore: %+v", run.Checks)
	}
	if run.RTO != nil || run.RTOMet == nil || *run.RTOMet {
		t.Fatalf("RTO %v met %v: no verified copy means no RTO and a missed objective", run.RTO, run.RTOMet)
	}
	if run.RPO == nil || run.RPOMet == nil || *run.RPOMet {
		t.Fatalf("RPO %v met %v: the backup's age is recorded, but a backup that does not restore meets no objective", run.RPO, run.RPOMet)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

func TestDrillEmptyFile(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if err := os.WriteFile(filepath.Join(b.backups, "shop.dump"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	run := b.drill(t, context.Background(), shopSpec(b.backups), nil)
	if run.Status != drills.StatusFailed || run.Reason != drills.ReasonLocateFailed || !strings.Contains(run.Error, "empty file") {
		t.Fatalf("got %s/%s (%s)", run.Status, run.Reason, run.Error)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

func TestDrillEmptyDirectory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	run := b.drill(t, context.Background(), shopSpec(b.backups), nil)
	if run.Status != drills.StatusFailed || run.Reason != drills.ReasonNoBackup || !strings.Contains(run.Error, "no backup files in") {
		t.Fatalf("got %s/%s (%s), want failed/no_backup", run.Status, run.Reason, run.Error)
	}
	if run.Target != nil {
		t.Fatalf("a target was made without a backup: %+v", run.Target)
	}
	if run.RPO != nil || run.RPOMet != nil {
		t.Fatalf("RPO %v measured without a backup", run.RPO)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

// bigShop puts a backup into b.backups whose restore takes long enough
// to interrupt it.
func bigShop(t *testing.T, b bundle) { drilltest.BigDump(t, b.backups) }

// cancelDuringRestore returns an event hook that calls cancel once the
// restore phase has run for a moment.
func cancelDuringRestore(cancel func()) func(drills.Event) {
	return func(e drills.Event) {
		if e.Kind == drills.EventPhaseStart && e.Phase == drills.PhaseRestore {
			time.AfterFunc(700*time.Millisecond, cancel)
		}
	}
}

func TestDrillCancelledDuringRestore(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bigShop(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	run := b.drill(t, ctx, shopSpec(b.backups), cancelDuringRestore(cancel))
	if run.Status != drills.StatusFailed || run.Reason != drills.ReasonInterrupted {
		t.Fatalf("got %s/%s (%s), want failed/interrupted", run.Status, run.Reason, run.Error)
	}
	last := run.Phases[len(run.Phases)-1]
	if last.Name != drills.PhaseTeardown || last.Error != "" || run.Target.State != drills.TargetDestroyed {
		t.Fatalf("teardown: %+v, target %+v", last, run.Target)
	}
	if run.Phases[2].Name != drills.PhaseRestore || !strings.Contains(run.Phases[2].Error, "stopped in the restore phase") {
		t.Fatalf("restore phase: %+v", run.Phases[2])
	}
	t.Logf("interrupted and torn down in %s", time.Since(start))
	drilltest.AssertNothingLeft(t, b.targetDir)
}

// The deadline passes in the middle of a real restore: pg_restore is
// stopped, the run fails with reason timeout and is torn down. The deadline
// is set off once the restore runs (a fixed timeout would race the
// provisioning on a loaded machine); the Runner's own deadline is tested
// in runner_fake_test.go.
func TestDrillTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bigShop(t, b)
	spec := shopSpec(b.backups)
	ctx := newDeadlineCtx()
	var restoreStarted time.Time
	run := b.drill(t, ctx, spec, func(e drills.Event) {
		if e.Kind == drills.EventPhaseStart && e.Phase == drills.PhaseRestore {
			restoreStarted = time.Now()
			time.AfterFunc(700*time.Millisecond, ctx.expire)
		}
	})
	if restoreStarted.IsZero() {
		t.Fatalf("the restore never started: %+v", run.Phases)
	}
	if run.Status != drills.StatusFailed || run.Reason != drills.ReasonTimeout || !strings.Contains(run.Error, "restore phase") {
		t.Fatalf("got %s/%s (%s), want failed/timeout in the restore phase", run.Status, run.Reason, run.Error)
	}
	if run.Target.State != drills.TargetDestroyed {
		t.Fatalf("target %+v", run.Target)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

// deadlineCtx is a context whose deadline passes when expire is called.
type deadlineCtx struct {
	context.Context
	done chan struct{}
	once sync.Once
}

func newDeadlineCtx() *deadlineCtx {
	return &deadlineCtx{Context: context.Background(), done: make(chan struct{})}
}

func (c *deadlineCtx) expire()               { c.once.Do(func() { close(c.done) }) }
func (c *deadlineCtx) Done() <-chan struct{} { return c.done }
func (c *deadlineCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func TestDrillKeep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	drilltest.DumpAs(t, b.shop, "custom", filepath.Join(b.backups, "shop.dump"))
	spec := shopSpec(b.backups)
	src, _ := pgdump.NewSource(context.Background(), pgdump.SourceConfig{Location: b.backups})
	r := &drills.Runner{Store: b.store}
	run, err := r.Run(context.Background(), drills.RunParams{Spec: spec, Source: src, Target: b.target, Keep: true, Trigger: drills.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != drills.StatusPassed || run.Target.State != drills.TargetKept {
		t.Fatalf("got %s, target %+v", run.Status, run.Target)
	}
	in := run.Target.Instance(run)
	if _, err := os.Stat(filepath.Join(in.ID, "data", "postmaster.pid")); err != nil {
		t.Fatalf("kept instance is not running: %v", err)
	}
	hint := b.target.ConnectHint(in)
	if !strings.Contains(hint, "psql") || !strings.Contains(hint, in.ID) {
		t.Fatalf("hint %q", hint)
	}
	// Destroy refuses another run's instance, then removes its own.
	other := in
	other.RunID++
	if err := b.target.Destroy(context.Background(), other); !errors.Is(err, drills.ErrNotManaged) {
		t.Fatalf("destroy of another run's instance: %v, want ErrNotManaged", err)
	}
	if err := b.target.Destroy(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

// Destroy never removes a directory drill did not make.
func TestDestroyRefusesForeignDirectory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	foreign := filepath.Join(b.targetDir, "drill-shop-1-abcdef")
	if err := os.MkdirAll(filepath.Join(foreign, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(foreign, "data", "precious"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := b.target.Destroy(context.Background(), drills.Instance{Type: local.TargetType, ID: foreign, RunID: 1, Drill: "shop"})
	if !errors.Is(err, drills.ErrNotManaged) {
		t.Fatalf("got %v, want ErrNotManaged", err)
	}
	if _, err := os.Stat(filepath.Join(foreign, "data", "precious")); err != nil {
		t.Fatalf("foreign file removed: %v", err)
	}
}

// The run record is written as the drill goes: intent before creation.
func TestTargetIntentRecordedBeforeCreation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	drilltest.DumpAs(t, b.shop, "custom", filepath.Join(b.backups, "shop.dump"))
	var stateAtProvision drills.TargetState
	var existedAtIntent bool
	run := b.drill(t, context.Background(), shopSpec(b.backups), func(e drills.Event) {
		if e.Kind == drills.EventProgress && e.Phase == drills.PhaseProvision && stateAtProvision == "" {
			_ = b.store.Pool.QueryRow(context.Background(), "select state from drill_targets where run_id = $1", e.Run.ID).Scan(&stateAtProvision)
			_, err := os.Stat(e.Run.Target.InstanceID)
			existedAtIntent = err == nil
		}
	})
	assertPassed(t, run)
	if stateAtProvision != drills.TargetIntended || existedAtIntent {
		t.Fatalf("at provision start: state %q, directory existed %v; want intended and not yet created", stateAtProvision, existedAtIntent)
	}
}

// Not parallel: the S3 server is reached through the AWS environment.
func TestDrillFromS3(t *testing.T) {
	b := setup(t)
	s3 := drilltest.NewS3(t)
	s3.Bucket(t, "backups")
	dump, err := os.ReadFile(drilltest.DumpAs(t, b.shop, "custom", filepath.Join(b.backups, "shop.dump")))
	if err != nil {
		t.Fatal(err)
	}
	s3.Put(t, "backups", "shop/2026-11-27.dump", dump)
	var downloads int
	run := b.drill(t, context.Background(), shopSpec("s3://backups/shop/"), func(e drills.Event) {
		if e.Kind == drills.EventProgress && strings.HasPrefix(e.Message, "downloaded") {
			downloads++
		}
	})
	assertPassed(t, run)
	if run.Backup.ID != "s3://backups/shop/2026-11-27.dump" || run.Backup.CreatedAtSource != "archive header" {
		t.Fatalf("backup %+v", run.Backup)
	}
	if downloads == 0 {
		t.Error("no download progress reported")
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

func TestDrillMissingS3Bucket(t *testing.T) {
	b := setup(t)
	drilltest.NewS3(t)
	run := b.drill(t, context.Background(), shopSpec("s3://nope/shop/"), nil)
	if run.Status != drills.StatusFailed || run.Reason != drills.ReasonNoBackup || !strings.Contains(run.Error, `bucket "nope" does not exist`) {
		t.Fatalf("got %s/%s (%s)", run.Status, run.Reason, run.Error)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

// A target that must wait (an instance still being created) is polled in
// this process until it is ready; the wait counts towards RTO.
func TestDrillWaitsForSlowTarget(t *testing.T) {
	t.Parallel()
	b := setup(t)
	drilltest.DumpAs(t, b.shop, "custom", filepath.Join(b.backups, "shop.dump"))
	slow := &drilltest.SlowTarget{Target: b.target, Waits: 2, After: 300 * time.Millisecond}
	src, _ := pgdump.NewSource(context.Background(), pgdump.SourceConfig{Location: b.backups})
	var waits int
	r := &drills.Runner{Store: b.store, Events: func(e drills.Event) {
		if e.Kind == drills.EventProgress && strings.Contains(e.Message, "instance creating; checking again") {
			waits++
		}
	}}
	spec := shopSpec(b.backups)
	run, err := r.Run(context.Background(), drills.RunParams{Spec: spec, Source: src, Target: slow, Trigger: drills.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := b.store.Run(context.Background(), run.ID)
	assertPassed(t, stored)
	if waits != 2 || slow.Calls(run.Target.InstanceID) != 3 {
		t.Fatalf("%d waits reported, %d provision calls; want 2 and 3", waits, slow.Calls(run.Target.InstanceID))
	}
	if *stored.RTO < 600*time.Millisecond {
		t.Fatalf("RTO %s does not include the wait", *stored.RTO)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

// Names that need quoting everywhere: a database with a space and a quote,
// a mixed-case schema and table, an extension and grants to a role the
// restore host does not have.
func TestDrillOddNames(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	name := "Weird 'DB' " + strings.ToLower(t.Name()[len(t.Name())-4:]) + time.Now().Format("150405.000")
	admin := drilltest.ServerURL(t)
	drilltest.Exec(t, admin, `create database "`+name+`"`)
	t.Cleanup(func() { drilltest.Exec(t, admin, `drop database if exists "`+name+`" with (force)`) })
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = name
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`create extension if not exists pg_trgm`,
		`create schema "Sales"`,
		`create table "Sales"."Orders" ("ID" int primary key, note text, at timestamp, amount money)`,
		`insert into "Sales"."Orders" select g, 'n' || g, now()::timestamp - g * interval '1 min', g from generate_series(1, 300) g`,
		`create index on "Sales"."Orders" using gin (note gin_trgm_ops)`,
		`do $$ begin if not exists (select from pg_roles where rolname = 'drilltest_reader') then create role drilltest_reader; end if; end $$`,
		`grant select on all tables in schema "Sales" to drilltest_reader`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	conn.Close(ctx)
	cmd := exec.Command(drilltest.Binaries(t).Path("pg_dump"), "-Fc", "-f", filepath.Join(b.backups, "weird.dump"),
		"--dbname", fmt.Sprintf("host=%s port=%d user=%s dbname='%s'", cfg.Host, cfg.Port, cfg.User, strings.ReplaceAll(name, "'", `\'`)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v %s", err, out)
	}
	spec := shopSpec(b.backups)
	spec.Objectives.RPO = time.Hour
	spec.Checks = []verify.Check{
		{Type: verify.TypeRowCount, Name: "orders", Table: `"Sales"."Orders"`, Equals: i64(300)},
		{Type: verify.TypeChecksum, Name: "sum", Table: `"Sales"."Orders"`},
		{Type: verify.TypeRecency, Name: "fresh", Table: `"Sales"."Orders"`, Column: "at", MaxAge: time.Hour},
	}
	run := b.drill(t, ctx, spec, nil)
	if run.Status != drills.StatusPassed {
		t.Fatalf("%s %s: %s", run.Status, run.Reason, run.Error)
	}
	if run.Target.Details["database"] != name {
		t.Fatalf("restored into %q, want the dump's own name %q", run.Target.Details["database"], name)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

// skewedDump is a custom archive (uncompressed, about 40 MB: more than one
// ranged GET) of a database whose data is nearly all one table of rows
// rows, and its bytes.
func skewedDump(t *testing.T, dir string, rows int) []byte {
	t.Helper()
	db := drilltest.NewDatabase(t)
	drilltest.Exec(t, db, fmt.Sprintf(`create table big (id int primary key, pad text);
		insert into big select g, repeat(md5(g::text), 3) from generate_series(1, %d) g;
		create table small (id int); insert into small values (1), (2)`, rows))
	path := filepath.Join(dir, "skewed.dump")
	drilltest.Dump(t, db, "-Fc", "-Z0", "-f", path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// drillBigFromS3 puts dump into a new bucket of s3 as the only backup of
// drill "big" and runs it on a local target that chooses how to load.
func (b bundle) drillBigFromS3(t *testing.T, s3 drilltest.S3Server, dump []byte, rows int64, events func(drills.Event)) *drills.Run {
	t.Helper()
	s3.Bucket(t, "backups")
	s3.Put(t, "backups", "big/2026-11-29.dump", dump)
	target, err := local.NewTarget(local.TargetConfig{Dir: b.targetDir})
	if err != nil {
		t.Fatal(err)
	}
	return b.drillWith(t, context.Background(), bigSpec("s3://backups/big/", rows), target, events)
}

func bigSpec(location string, rows int64) *drills.Spec {
	return &drills.Spec{Name: "big", Timeout: 2 * time.Minute, Source: pgdump.Spec(location),
		Target: drills.TargetSpec{Type: local.TargetType}, Objectives: drills.Objectives{RPO: 24 * time.Hour},
		Checks: []verify.Check{{Type: verify.TypeRowCount, Name: "big", Table: "public.big", Equals: i64(rows)}}}
}

// A custom archive in S3 whose data is nearly all one table is restored
// in one transaction by pg_restore reading it as it downloads; the sha256
// recorded is the object's, computed as it downloads too.
// Not parallel: the S3 server is reached through the AWS environment.
func TestDrillStreamsFromS3(t *testing.T) {
	b := setup(t)
	const rows = 400_000
	dump := skewedDump(t, t.TempDir(), rows)
	if len(dump) < 2*16<<20 {
		t.Fatalf("the dump is %d bytes: too small to be downloaded in parts", len(dump))
	}
	var said []string
	run := b.drillBigFromS3(t, drilltest.NewS3(t), dump, rows, func(e drills.Event) {
		if e.Kind == drills.EventProgress {
			said = append(said, e.Message)
		}
	})
	if run.Status != drills.StatusPassed {
		t.Fatalf("status %s (%s): %s", run.Status, run.Reason, run.Error)
	}
	all := strings.Join(said, "\n")
	if !strings.Contains(all, "one transaction: table public.big holds") || !strings.Contains(all, "reading the archive as it downloads") {
		t.Errorf("the restore did not read the archive as it downloaded:\n%s", all)
	}
	if want := fmt.Sprintf("%x", sha256.Sum256(dump)); run.Backup.SHA256 != want || run.Backup.SizeBytes != int64(len(dump)) {
		t.Errorf("recorded sha256 %s (%d bytes), want %s (%d bytes)", run.Backup.SHA256, run.Backup.SizeBytes, want, len(dump))
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}

// A download that fails after the restore began reading it fails the
// drill with the download's error, and leaves nothing behind.
// Not parallel: the S3 server is reached through the AWS environment.
func TestDrillStreamFailsMidDownload(t *testing.T) {
	b := setup(t)
	const rows = 400_000
	dump := skewedDump(t, t.TempDir(), rows)
	// Every part after the first is refused.
	s3 := drilltest.NewS3With(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if rng := r.Header.Get("Range"); rng != "" && !strings.HasPrefix(rng, "bytes=0-") {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	run := b.drillBigFromS3(t, s3, dump, rows, nil)
	t.Logf("the run failed: %s", run.Error)
	if run.Status != drills.StatusFailed || run.Reason != drills.ReasonRestoreFailed || !strings.Contains(run.Error, "access denied to s3://backups/big/") {
		t.Fatalf("got %s/%s: %s", run.Status, run.Reason, run.Error)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
	if procs := drilltest.ProcessesMentioning(b.targetDir); len(procs) != 0 {
		t.Fatalf("processes left: %v", procs)
	}
}

// An S3 backup read with the ETag it was listed with is restored; one
// replaced between locate and restore, or a server that
// ignores Range and sends the whole object for every part, fails the
// drill with a message that says so; nothing is restored from the wrong
// bytes and nothing is left behind.
// Not parallel: the S3 server is reached through the AWS environment.
func TestDrillStreamRefusesOtherBytes(t *testing.T) {
	b := setup(t)
	const rows = 400_000
	dump := skewedDump(t, t.TempDir(), rows)
	target, err := local.NewTarget(local.TargetConfig{Dir: b.targetDir})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		wrap    func(http.Handler) http.Handler
		replace bool
		want    string
	}{
		{"unchanged", drilltest.IfMatch, false, ""}, // the ETag listed is the one If-Match is checked against
		{"replaced", drilltest.IfMatch, true, "was replaced while drill read it"},
		{"range-ignored", func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r.Header.Del("Range")
				h.ServeHTTP(w, r)
			})
		}, false, "asked for 8388608 bytes at byte 0, the server sent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s3 := drilltest.NewS3With(t, tc.wrap)
			s3.Bucket(t, "backups")
			s3.Put(t, "backups", "big/2026-11-29.dump", dump)
			run := b.drillWith(t, context.Background(), bigSpec("s3://backups/big/", rows), target, func(e drills.Event) {
				if tc.replace && e.Kind == drills.EventPhaseStart && e.Phase == drills.PhaseRestore {
					s3.Put(t, "backups", "big/2026-11-29.dump", append(bytes.Clone(dump), '\n'))
				}
			})
			if tc.want == "" {
				if run.Status != drills.StatusPassed {
					t.Fatalf("got %s/%s: %s", run.Status, run.Reason, run.Error)
				}
				return
			}
			t.Logf("the run failed: %s", run.Error)
			if run.Status != drills.StatusFailed || run.Reason != drills.ReasonRestoreFailed || !strings.Contains(run.Error, tc.want) {
				t.Fatalf("got %s/%s: %s; want a failed restore saying %q", run.Status, run.Reason, run.Error, tc.want)
			}
			drilltest.AssertNothingLeft(t, b.targetDir)
		})
	}
}

// A plain or gzipped plain dump in S3 is restored as it downloads (psql
// reads it in one pass); the sha256 recorded is the object's.
// Not parallel: the S3 server is reached through the AWS environment.
func TestDrillStreamsPlainFromS3(t *testing.T) {
	b := setup(t)
	s3 := drilltest.NewS3(t)
	s3.Bucket(t, "backups")
	for _, format := range []string{"plain", "plain-gzip"} {
		t.Run(format, func(t *testing.T) {
			dump, err := os.ReadFile(drilltest.DumpAs(t, b.shop, format, filepath.Join(t.TempDir(), "shop.sql")))
			if err != nil {
				t.Fatal(err)
			}
			key := "shop-" + format + "/2026-11-29.sql"
			if format == "plain-gzip" {
				key += ".gz"
			}
			s3.Put(t, "backups", key, dump)
			var said []string
			run := b.drill(t, context.Background(), shopSpec("s3://backups/"+path.Dir(key)+"/"), func(e drills.Event) {
				if e.Kind == drills.EventProgress {
					said = append(said, e.Message)
				}
			})
			assertPassed(t, run)
			if all := strings.Join(said, "\n"); !strings.Contains(all, "restoring the dump as it downloads") {
				t.Errorf("the dump was not restored as it downloaded:\n%s", all)
			}
			if want := fmt.Sprintf("%x", sha256.Sum256(dump)); run.Backup.SHA256 != want {
				t.Errorf("recorded sha256 %s, want %s", run.Backup.SHA256, want)
			}
			drilltest.AssertNothingLeft(t, b.targetDir)
		})
	}
}

// A streamed archive whose data PostgreSQL refuses fails the drill with
// the restore's own error (not the stream's, closed after it), and leaves
// nothing behind.
// Not parallel: the S3 server is reached through the AWS environment.
func TestDrillStreamRestoreError(t *testing.T) {
	b := setup(t)
	const rows = 400_000
	dump := skewedDump(t, t.TempDir(), rows)
	// A row far into the big table's data gets a letter for its id.
	at := bytes.Index(dump, []byte("300000\t"))
	if at < 0 {
		t.Fatal("no row to spoil")
	}
	dump[at] = 'x'
	run := b.drillBigFromS3(t, drilltest.NewS3(t), dump, rows, nil)
	if run.Status != drills.StatusFailed || run.Reason != drills.ReasonRestoreFailed ||
		!strings.Contains(run.Error, "invalid input syntax for type integer") || strings.Contains(run.Error, "download") {
		t.Fatalf("got %s/%s: %s", run.Status, run.Reason, run.Error)
	}
	drilltest.AssertNothingLeft(t, b.targetDir)
}
