package rds_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"drill/drills"
	"drill/drills/drilltest"
	"drill/drills/rds"
	"drill/drills/rds/fakerds"
	"drill/drills/statedb"
	"drill/jobs"
	"drill/verify"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awsrds "github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(drilltest.Main(m)) }

// These tests reach the emulator through the standard AWS environment
// (AWS_ENDPOINT_URL_RDS), as a user reaches any endpoint: they cannot run
// in parallel.

type bundle struct {
	emu    *fakerds.Server
	store  *statedb.Store
	dbName string
	dump   string // the source's data
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func setup(t *testing.T, delay time.Duration, throttle float64) bundle {
	t.Helper()
	shop := drilltest.Shop(t)
	dump := drilltest.DumpAs(t, shop, "custom", filepath.Join(t.TempDir(), "prod.dump"))
	emu, err := fakerds.New(drilltest.SharedDir(t))
	if err != nil {
		t.Fatal(err)
	}
	emu.CreateDelay, emu.ThrottleRate = delay, throttle
	if err := emu.AddSource(context.Background(), "orders-prod", dump); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(emu)
	t.Cleanup(func() { ts.Close(); emu.Close() })
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ENDPOINT_URL_RDS", ts.URL)
	name := shop[strings.Index(shop, "dbname=")+len("dbname="):]
	name = name[:strings.Index(name, " ")]
	return bundle{emu: emu, store: drilltest.Store(t), dbName: name, dump: dump, logs: &syncBuffer{}}
}

func i64(n int64) *int64 { return &n }

// setTarget changes the rds target settings of spec.
func setTarget(spec *drills.Spec, change func(*rds.TargetSettings)) {
	t := spec.Target.Settings.(rds.TargetSettings)
	change(&t)
	spec.Target.Settings = t
}

func (b bundle) spec(sourceType string) *drills.Spec {
	return &drills.Spec{Name: "orders", Timeout: 2 * time.Minute,
		Source: drills.SourceSpec{Type: sourceType, Settings: rds.SourceSettings{Instance: "orders-prod"}},
		Target: drills.TargetSpec{Type: rds.TargetType, Settings: rds.TargetSettings{InstanceClass: "db.t4g.micro", SubnetGroup: "drill-isolated",
			SecurityGroups: []string{"sg-0123"}, Database: b.dbName, Tags: map[string]string{"team": "platform"}, PollInterval: 100 * time.Millisecond}},
		Objectives: drills.Objectives{RTO: 10 * time.Minute, RPO: 26 * time.Hour},
		Checks: []verify.Check{
			{Type: verify.TypeRowCount, Name: "orders", Table: "public.orders", Equals: i64(drilltest.ShopRows)},
			{Type: verify.TypeChecksum, Name: "sum", Table: "public.orders"},
		}}
}

// drill runs spec in this process; passwordSeen receives the master
// password the emulator holds while the checks run.
func (b bundle) drill(t *testing.T, spec *drills.Spec) (*drills.Run, string) {
	t.Helper()
	ctx := context.Background()
	// built as drill builds them: through the backends' registration
	srcBackend, _ := drills.Lookup(drills.KindSource, spec.Source.Type)
	src, err := srcBackend.NewSource(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	tgtBackend, _ := drills.Lookup(drills.KindTarget, spec.Target.Type)
	tgt, err := tgtBackend.NewTarget(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	var password string
	r := &drills.Runner{Store: b.store, Logger: slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Events: func(e drills.Event) {
			if e.Kind == drills.EventPhaseStart && e.Phase == drills.PhaseVerify {
				password = b.emu.Password(e.Run.Target.InstanceID)
				if password == "" { // an Aurora cluster
					password = b.emu.ClusterPassword(e.Run.Target.InstanceID)
				}
			}
		}}
	run, err := r.Run(ctx, drills.RunParams{Spec: spec, Source: src, Target: tgt, Policy: drills.PolicyOf(spec, "", "test"), Trigger: drills.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := b.store.Run(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	return stored, password
}

// waitGone waits until the emulator holds no restored instance.
func (b bundle) waitGone(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(b.emu.Instances()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("instances left in the emulator: %v", b.emu.Instances())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertSecretNowhere checks the password is in no log line and no table.
func (b bundle) assertSecretNowhere(t *testing.T, secret string) {
	t.Helper()
	if len(secret) < 16 {
		t.Fatalf("no password captured (%q): the check would prove nothing", secret)
	}
	if strings.Contains(b.logs.String(), secret) {
		t.Fatal("the master password appears in the logs")
	}
	for _, table := range []string{"drill_runs", "drill_phases", "drill_checks", "drill_targets", "river_job"} {
		var dump string
		if err := b.store.Pool.QueryRow(context.Background(), "select coalesce(string_agg(t::text, ' '), '') from "+table+" t").Scan(&dump); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(dump, secret) {
			t.Fatalf("the master password is stored in %s", table)
		}
	}
}

func TestSnapshotDrill(t *testing.T) {
	b := setup(t, 300*time.Millisecond, 0)
	run, password := b.drill(t, b.spec(rds.SnapshotSourceType))
	if run.Status != drills.StatusPassed {
		t.Fatalf("%s %s: %s", run.Status, run.Reason, run.Error)
	}
	if !strings.HasPrefix(run.Backup.ID, "rds:orders-prod-") || run.Backup.Format != rds.FormatSnapshot || run.Backup.Details["engine"] != "postgres" ||
		run.Backup.Details["snapshot_arn"] == "" || run.Backup.Details["encrypted"] != "true" {
		t.Fatalf("backup %+v", run.Backup)
	}
	if run.RPO == nil || run.RTO == nil || run.Target.State != drills.TargetDestroyed || run.Target.InstanceID != "drill-orders-"+itoa(run.ID) {
		t.Fatalf("rto %v rpo %v target %+v", run.RTO, run.RPO, run.Target)
	}
	if j := run.JSON(); j.Target.InstanceHours == nil {
		t.Error("instance hours not recorded")
	}
	b.waitGone(t)
	b.assertSecretNowhere(t, password)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestPointInTimeDrill(t *testing.T) {
	b := setup(t, 200*time.Millisecond, 0)
	run, password := b.drill(t, b.spec(rds.PITRSourceType))
	if run.Status != drills.StatusPassed || run.Backup.Format != rds.FormatPITR || run.Backup.Details["restore_time"] == "" {
		t.Fatalf("%s %s: %s; backup %+v", run.Status, run.Reason, run.Error, run.Backup)
	}
	b.waitGone(t)
	b.assertSecretNowhere(t, password)
}

func TestThrottlingStillCompletes(t *testing.T) {
	b := setup(t, 200*time.Millisecond, 0.3)
	run, _ := b.drill(t, b.spec(rds.SnapshotSourceType))
	if run.Status != drills.StatusPassed {
		t.Fatalf("%s %s: %s", run.Status, run.Reason, run.Error)
	}
	b.waitGone(t)
}

// An instance stuck in "creating" past the drill's timeout is torn down.
func TestStuckCreatingIsTornDown(t *testing.T) {
	b := setup(t, time.Hour, 0)
	spec := b.spec(rds.SnapshotSourceType)
	spec.Timeout = 4 * time.Second
	run, _ := b.drill(t, spec)
	if run.Status != drills.StatusFailed || run.Reason != drills.ReasonTimeout || run.Target.State != drills.TargetDestroyed {
		t.Fatalf("%s %s (%s), target %+v", run.Status, run.Reason, run.Error, run.Target)
	}
	b.waitGone(t)
}

func rdsClient(t *testing.T) *awsrds.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return awsrds.NewFromConfig(cfg)
}

// restoreRaw makes an instance from the source's snapshot with the given tags, as someone else might.
func restoreRaw(t *testing.T, c *awsrds.Client, id string, tags map[string]string) {
	t.Helper()
	ctx := context.Background()
	snaps, err := c.DescribeDBSnapshots(ctx, &awsrds.DescribeDBSnapshotsInput{DBInstanceIdentifier: aws.String("orders-prod")})
	if err != nil || len(snaps.DBSnapshots) == 0 {
		t.Fatalf("snapshots: %v", err)
	}
	var tl []types.Tag
	for k, v := range tags {
		tl = append(tl, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	if _, err := c.RestoreDBInstanceFromDBSnapshot(ctx, &awsrds.RestoreDBInstanceFromDBSnapshotInput{DBInstanceIdentifier: aws.String(id),
		DBSnapshotIdentifier: snaps.DBSnapshots[0].DBSnapshotIdentifier, Tags: tl}); err != nil {
		t.Fatal(err)
	}
}

func TestDestroyRefusesWithoutOurTags(t *testing.T) {
	b := setup(t, 0, 0)
	ctx := context.Background()
	c := rdsClient(t)
	restoreRaw(t, c, "drill-orders-99", nil)
	restoreRaw(t, c, "drill-orders-100", map[string]string{"ManagedBy": "drill", "DrillRun": "101"})
	tgt, err := rds.NewTarget(ctx, rds.TargetConfig{InstanceClass: "db.t4g.micro", AllowDefaultNetwork: true})
	if err != nil {
		t.Fatal(err)
	}
	for id, run := range map[string]int64{"drill-orders-99": 99, "drill-orders-100": 100} {
		err := tgt.Destroy(ctx, drills.Instance{Type: rds.TargetType, ID: id, RunID: run, Drill: "orders"})
		if !errors.Is(err, drills.ErrNotManaged) {
			t.Errorf("%s: %v, want ErrNotManaged", id, err)
		}
	}
	if got := b.emu.Instances(); len(got) != 2 {
		t.Fatalf("instances %v: a refused delete deleted", got)
	}
}

// The sweeper deletes an orphaned instance with this installation's tags,
// and leaves an untagged one (and another installation's) alone.
func TestSweeperRemovesOrphanedTaggedInstance(t *testing.T) {
	b := setup(t, 0, 0)
	ctx := context.Background()
	storeID, err := b.store.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := rdsClient(t)
	restoreRaw(t, c, "drill-orders-7", map[string]string{"ManagedBy": "drill", "DrillRun": "7", "Drill": "orders", "DrillStore": storeID})
	restoreRaw(t, c, "drill-orders-8", nil)
	restoreRaw(t, c, "drill-orders-9", map[string]string{"ManagedBy": "drill", "DrillRun": "9", "Drill": "orders", "DrillStore": "someone-else"})
	cfg := &drills.Config{Drills: []*drills.Spec{b.spec(rds.SnapshotSourceType)}}
	rep, err := jobs.NewSweeper(jobs.Config{Drills: cfg, Store: b.store}, nil).Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.OrphansRemoved) != 1 || rep.OrphansRemoved[0] != "drill-orders-7" {
		t.Fatalf("orphans removed %v (errors %v)", rep.OrphansRemoved, rep.Errors)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := b.emu.Instances()
		if len(got) == 2 && got[0] == "drill-orders-8" && got[1] == "drill-orders-9" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("instances %v, want drill-orders-8 and -9 left", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestErrors(t *testing.T) {
	setup(t, 0, 0)
	ctx := context.Background()
	src, err := rds.NewSource(ctx, rds.SourceConfig{Instance: "nope"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Latest(ctx); !errors.Is(err, drills.ErrNoBackup) || !strings.Contains(err.Error(), `"nope" not found`) {
		t.Errorf("unknown instance: %v", err)
	}
	src, _ = rds.NewSource(ctx, rds.SourceConfig{Instance: "orders-prod", SnapshotTypes: []string{"manual"}})
	if _, err := src.Latest(ctx); !errors.Is(err, drills.ErrNoBackup) || !strings.Contains(err.Error(), "no available [manual] snapshot") {
		t.Errorf("no manual snapshot: %v", err)
	}
	src, _ = rds.NewSource(ctx, rds.SourceConfig{Instance: "orders-prod", PointInTime: true, RestoreTime: time.Now().Add(time.Hour).Format(time.RFC3339)})
	if _, err := src.Latest(ctx); !errors.Is(err, drills.ErrNoBackup) || !strings.Contains(err.Error(), "after the latest restorable time") {
		t.Errorf("restore time in the future: %v", err)
	}
	tgt, _ := rds.NewTarget(ctx, rds.TargetConfig{InstanceClass: "x", AllowDefaultNetwork: true, SourceInstance: "drill-orders-5-prod"})
	if _, err := tgt.Plan(drills.RunRef{ID: 5, Drill: "orders"}); err == nil {
		t.Error("an instance id that prefixes the source's was allowed")
	}
	if _, err := rds.NewTarget(ctx, rds.TargetConfig{InstanceClass: "x"}); err == nil {
		t.Error("a target without subnet_group or allow_default_network was allowed")
	}
}

// Under a worker, the job snoozes while the instance is being created.
// enqueued sets up an emulator whose restores take delay, starts a worker
// and enqueues a snapshot drill that polls every 300 ms.
func enqueued(t *testing.T, delay time.Duration) (bundle, *drills.Run) {
	t.Helper()
	b := setup(t, delay, 0)
	ctx := context.Background()
	spec := b.spec(rds.SnapshotSourceType)
	setTarget(spec, func(t *rds.TargetSettings) { t.PollInterval = 300 * time.Millisecond })
	cfg := &drills.Config{Drills: []*drills.Spec{spec}}
	client, err := jobs.NewWorkerClient(jobs.Config{Drills: cfg, Store: b.store, Concurrency: 1, Logger: slog.New(slog.NewJSONHandler(b.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.Background()) })
	run, err := jobs.Enqueue(ctx, b.store, client, spec, drills.PolicyOf(spec, "", "test"), drills.TriggerManual, "test")
	if err != nil {
		t.Fatal(err)
	}
	return b, run
}

// waitState is the target's own state as stored while the run waits.
type waitState struct {
	Polls            int  `json:"polls"`
	RestoreRequested bool `json:"restore_requested"`
}

func (b bundle) waitState(t *testing.T, runID int64) waitState {
	t.Helper()
	var raw []byte
	err := b.store.Pool.QueryRow(context.Background(), "select coalesce(backend_state, 'null') from drill_targets where run_id = $1", runID).Scan(&raw)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatal(err)
	}
	var s waitState
	_ = json.Unmarshal(raw, &s)
	return s
}

func TestWorkerSnoozesWhileCreating(t *testing.T) {
	b, run := enqueued(t, 2*time.Second)
	ctx := context.Background()
	sawWaiting, sawState := false, false
	deadline := time.Now().Add(90 * time.Second)
	for {
		r, err := b.store.Run(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.WaitingUntil != nil {
			sawWaiting = true
			s := b.waitState(t, run.ID)
			sawState = sawState || s.RestoreRequested && s.Polls > 0
		}
		if r.FinishedAt != nil {
			if r.Status != drills.StatusPassed {
				t.Fatalf("%s %s: %s", r.Status, r.Reason, r.Error)
			}
			for _, k := range []string{"polls", "status", "restore_requested"} {
				if _, ok := r.Target.Details[k]; ok {
					t.Errorf("the record's details hold the target's own state %q: %v", k, r.Target.Details)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run did not finish: %+v\n%s", r, tail(b.logs.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !sawWaiting || !sawState {
		t.Fatalf("waiting seen %v, its state stored %v: the run never snoozed with its state while its instance was created", sawWaiting, sawState)
	}
	b.waitGone(t)
}

// An instance deleted by someone else while it is created fails the run
// (the restore is not requested a second time): the target's state
// outlives the snoozes.
func TestInstanceGoneWhileCreatingFails(t *testing.T) {
	b, run := enqueued(t, 4*time.Second)
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for !b.waitState(t, run.ID).RestoreRequested {
		if time.Now().After(deadline) {
			t.Fatalf("the restore was never requested\n%s", tail(b.logs.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	id := "drill-orders-" + itoa(run.ID)
	if _, err := rdsClient(t).DeleteDBInstance(ctx, &awsrds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String(id), SkipFinalSnapshot: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	b.waitGone(t)
	deadline = time.Now().Add(60 * time.Second)
	for {
		r, err := b.store.Run(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.FinishedAt != nil {
			if r.Status != drills.StatusFailed || !strings.Contains(r.Error, "disappeared while being created") {
				t.Fatalf("%s %s: %s", r.Status, r.Reason, r.Error)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run did not finish: %+v\n%s", r, tail(b.logs.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := b.emu.Instances(); len(got) > 0 {
		t.Fatalf("the restore was requested again: %v", got)
	}
}

func tail(s string) string {
	if len(s) > 6000 {
		return s[len(s)-6000:]
	}
	return s
}

// With a CA bundle, connections verify the server's certificate: the
// emulator's CA passes, another CA fails the drill.
func TestVerifyFullWithCABundle(t *testing.T) {
	b := setup(t, 0, 0)
	good := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(good, b.emu.CAPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := b.spec(rds.SnapshotSourceType)
	setTarget(spec, func(t *rds.TargetSettings) { t.CABundle = good })
	if run, _ := b.drill(t, spec); run.Status != drills.StatusPassed {
		t.Fatalf("verify-full with the right CA: %s %s: %s", run.Status, run.Reason, run.Error)
	}
	other, err := fakerds.New(drilltest.SharedDir(t))
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(bad, other.CAPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	setTarget(spec, func(t *rds.TargetSettings) { t.CABundle = bad })
	run, _ := b.drill(t, spec)
	if run.Status != drills.StatusFailed || run.Reason != drills.ReasonRestoreFailed || !strings.Contains(run.Error, "does not verify against ca_bundle") || run.Target.State != drills.TargetDestroyed {
		t.Fatalf("verify-full with a wrong CA: %s %s (%s), target %+v", run.Status, run.Reason, run.Error, run.Target)
	}
	b.waitGone(t)
}
