package rds_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"drill/drills"
	"drill/drills/drilltest"
	"drill/drills/rds"
	"drill/jobs"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsrds "github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
)

// auroraSetup is setup with an Aurora cluster orders-aurora too.
func auroraSetup(t *testing.T, delay time.Duration) bundle {
	t.Helper()
	b := setup(t, delay, 0)
	// The cluster's data is the instance's: the same database name.
	if err := b.emu.AddClusterSource(context.Background(), "orders-aurora", b.dump); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b bundle) auroraSpec(sourceType string, restoreTime string) *drills.Spec {
	spec := b.spec(rds.SnapshotSourceType)
	spec.Source = drills.SourceSpec{Type: sourceType, Settings: rds.AuroraSourceSettings{Cluster: "orders-aurora", RestoreTime: restoreTime}}
	spec.Target.Type = rds.AuroraTargetType
	setTarget(spec, func(t *rds.TargetSettings) { t.InstanceClass = "db.r6g.large" })
	return spec
}

// waitClustersGone waits until the emulator holds no restored cluster
// and no instance.
func (b bundle) waitClustersGone(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(b.emu.Clusters())+len(b.emu.Instances()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("left in the emulator: clusters %v, instances %v", b.emu.Clusters(), b.emu.Instances())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The done-when of Aurora drills: a snapshot drill and a point-in-time
// drill pass through the real SDK against the emulator, with a cluster
// and an instance in it, and leave neither; the password is nowhere.
func TestAuroraDrills(t *testing.T) {
	b := auroraSetup(t, 200*time.Millisecond)
	for _, tc := range []struct{ source, restoreTime string }{
		{rds.AuroraSnapshotSourceType, ""}, {rds.AuroraPITRSourceType, "latest"}, {rds.AuroraPITRSourceType, time.Now().Add(-10 * time.Minute).UTC().Format(time.RFC3339)},
	} {
		spec := b.auroraSpec(tc.source, tc.restoreTime)
		spec.Checks[0].Equals = i64(drilltest.ShopRows)
		run, password := b.drill(t, spec)
		if run.Status != drills.StatusPassed {
			t.Fatalf("%s %s: %s %s: %s", tc.source, tc.restoreTime, run.Status, run.Reason, run.Error)
		}
		if run.Target.Type != rds.AuroraTargetType || run.Target.InstanceID != "drill-orders-"+itoa(run.ID) || run.Target.State != drills.TargetDestroyed ||
			run.Target.Details["instance"] != run.Target.InstanceID+"-1" || run.Target.Details["cluster_arn"] == "" {
			t.Fatalf("target %+v", run.Target)
		}
		switch tc.source {
		case rds.AuroraSnapshotSourceType:
			if !strings.HasPrefix(run.Backup.ID, "rds:orders-aurora-") || run.Backup.Format != rds.FormatAuroraSnapshot || run.Backup.Details["engine"] != "aurora-postgresql" {
				t.Fatalf("backup %+v", run.Backup)
			}
		default:
			if run.Backup.RecoveredTo == nil || !run.Backup.RecoveredTo.Equal(run.Backup.CreatedAt) || run.Backup.Details["restore_time"] == "" {
				t.Fatalf("backup %+v: recovered_to must be the restore time used", run.Backup)
			}
			if tc.restoreTime == "latest" && run.Backup.Details["restore_time"] != run.Backup.Details["latest_restorable_time"] {
				t.Fatalf("latest resolves to the cluster's LatestRestorableTime: %+v", run.Backup.Details)
			}
			if rpo := run.RPO; rpo == nil || (*rpo-run.StartedAt.Sub(*run.Backup.RecoveredTo)).Abs() > time.Second {
				t.Fatalf("RPO %v, want start − recovered_to", run.RPO)
			}
		}
		b.waitClustersGone(t)
		b.assertSecretNowhere(t, password)
	}
}

// A restored cluster's isolation: no public instance, the given subnet
// group and security groups, no deletion protection, drill's tags on the
// cluster and the instance.
func TestAuroraIsolation(t *testing.T) {
	b := auroraSetup(t, 2*time.Second)
	spec := b.auroraSpec(rds.AuroraSnapshotSourceType, "")
	ctx := context.Background()
	c := rdsClient(t)
	done := make(chan *drills.Run)
	go func() { run, _ := b.drill(t, spec); done <- run }()
	var cl types.DBCluster
	var in types.DBInstance
	drilltest.WaitFor(t, 30*time.Second, "the cluster and its instance", func() bool {
		out, err := c.DescribeDBInstances(ctx, &awsrds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("drill-orders-1-1")})
		if err != nil || len(out.DBInstances) == 0 {
			return false
		}
		in = out.DBInstances[0]
		cs, err := c.DescribeDBClusters(ctx, &awsrds.DescribeDBClustersInput{DBClusterIdentifier: aws.String("drill-orders-1")})
		if err != nil || len(cs.DBClusters) == 0 {
			return false
		}
		cl = cs.DBClusters[0]
		return true
	})
	if aws.ToBool(in.PubliclyAccessible) || aws.ToString(in.DBClusterIdentifier) != "drill-orders-1" || aws.ToBool(cl.DeletionProtection) ||
		aws.ToString(cl.DBSubnetGroup) != "drill-isolated" || len(cl.VpcSecurityGroups) != 1 || aws.ToString(cl.VpcSecurityGroups[0].VpcSecurityGroupId) != "sg-0123" {
		t.Errorf("isolation: cluster %+v instance %+v", cl, in)
	}
	for _, tags := range [][]types.Tag{cl.TagList, in.TagList} {
		got := map[string]string{}
		for _, tg := range tags {
			got[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
		if got["ManagedBy"] != "drill" || got["Drill"] != "orders" || got["DrillRun"] != "1" || got["DrillStore"] == "" || got["team"] != "platform" {
			t.Errorf("tags %v", got)
		}
	}
	if run := <-done; run.Status != drills.StatusPassed {
		t.Fatalf("%s %s: %s", run.Status, run.Reason, run.Error)
	}
	b.waitClustersGone(t)
}

// Teardown and the sweeper refuse what does not carry drill's tags; the
// sweeper removes an orphaned cluster of this installation (with its
// instance) and spares an untagged one and another installation's.
func TestAuroraSweeperAndRefusals(t *testing.T) {
	b := auroraSetup(t, 0)
	ctx := context.Background()
	storeID, err := b.store.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := rdsClient(t)
	restoreCluster := func(id string, tags map[string]string) {
		t.Helper()
		var tl []types.Tag
		for k, v := range tags {
			tl = append(tl, types.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
		snaps, err := c.DescribeDBClusterSnapshots(ctx, &awsrds.DescribeDBClusterSnapshotsInput{DBClusterIdentifier: aws.String("orders-aurora")})
		if err != nil || len(snaps.DBClusterSnapshots) == 0 {
			t.Fatalf("snapshots: %v", err)
		}
		if _, err := c.RestoreDBClusterFromSnapshot(ctx, &awsrds.RestoreDBClusterFromSnapshotInput{DBClusterIdentifier: aws.String(id),
			SnapshotIdentifier: snaps.DBClusterSnapshots[0].DBClusterSnapshotIdentifier, Engine: aws.String("aurora-postgresql"), Tags: tl}); err != nil {
			t.Fatal(err)
		}
		drilltest.WaitFor(t, 30*time.Second, id+" available", func() bool {
			out, err := c.DescribeDBClusters(ctx, &awsrds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(id)})
			return err == nil && aws.ToString(out.DBClusters[0].Status) == "available"
		})
		if _, err := c.CreateDBInstance(ctx, &awsrds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String(id + "-1"), DBClusterIdentifier: aws.String(id),
			DBInstanceClass: aws.String("db.r6g.large"), Engine: aws.String("aurora-postgresql"), Tags: tl}); err != nil {
			t.Fatal(err)
		}
	}
	restoreCluster("drill-orders-7", map[string]string{"ManagedBy": "drill", "DrillRun": "7", "Drill": "orders", "DrillStore": storeID})
	restoreCluster("drill-orders-8", nil)
	restoreCluster("drill-orders-9", map[string]string{"ManagedBy": "drill", "DrillRun": "9", "Drill": "orders", "DrillStore": "someone-else"})

	spec := b.auroraSpec(rds.AuroraSnapshotSourceType, "")
	tgt, ok := drills.Lookup(drills.KindTarget, rds.AuroraTargetType)
	if !ok {
		t.Fatal("no aurora target registered")
	}
	target, terr := tgt.NewTarget(ctx, spec)
	if terr != nil {
		t.Fatal(terr)
	}
	for id, run := range map[string]int64{"drill-orders-8": 8, "drill-orders-9": 10} {
		if err := target.Destroy(ctx, drills.Instance{Type: rds.AuroraTargetType, ID: id, RunID: run, Drill: "orders"}); !errors.Is(err, drills.ErrNotManaged) {
			t.Errorf("destroy %s: %v, want ErrNotManaged", id, err)
		}
	}
	// The RDS target neither lists nor deletes members of a cluster: a
	// sweep of an rds drill must not take an Aurora drill's instance.
	rdsSpec := b.spec(rds.SnapshotSourceType)
	rdsSpec.Name = "orders-rds"
	rdsTgt, _ := drills.Lookup(drills.KindTarget, rds.TargetType)
	rdsTarget, terr := rdsTgt.NewTarget(ctx, rdsSpec)
	if terr != nil {
		t.Fatal(terr)
	}
	if err := rdsTarget.Destroy(ctx, drills.Instance{Type: rds.TargetType, ID: "drill-orders-7-1", RunID: 7, Drill: "orders"}); !errors.Is(err, drills.ErrNotManaged) || !strings.Contains(err.Error(), "member of Aurora cluster drill-orders-7") {
		t.Errorf("rds destroy of a cluster member: %v, want ErrNotManaged", err)
	}
	cfg := &drills.Config{Drills: []*drills.Spec{spec, rdsSpec}}
	rep, serr := jobs.NewSweeper(jobs.Config{Drills: cfg, Store: b.store}, nil).Sweep(ctx)
	if serr != nil {
		t.Fatal(serr)
	}
	if len(rep.OrphansRemoved) != 1 || rep.OrphansRemoved[0] != "drill-orders-7" {
		t.Fatalf("orphans removed %v (errors %v)", rep.OrphansRemoved, rep.Errors)
	}
	drilltest.WaitFor(t, 30*time.Second, "only drill-orders-8 and -9 left", func() bool {
		got := b.emu.Clusters()
		return len(got) == 2 && got[0] == "drill-orders-8" && got[1] == "drill-orders-9"
	})
	if got := b.emu.Instances(); len(got) != 2 {
		t.Fatalf("instances %v, want those of -8 and -9", got)
	}
}
