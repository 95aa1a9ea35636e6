package rds

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"drill/drills"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
)

// Aurora PostgreSQL: a cluster snapshot or a point in time of a cluster,
// restored into a new cluster with one instance in it (a restored cluster
// has no instance, and without one nothing can connect).

// Types of this file in drill.yaml, and the backups' formats.
const (
	AuroraSnapshotSourceType = "aurora-snapshot"
	AuroraPITRSourceType     = "aurora-pitr"
	AuroraTargetType         = "aurora"

	FormatAuroraSnapshot = "aurora-snapshot"
	FormatAuroraPITR     = "aurora-pitr"

	auroraEngine = "aurora-postgresql"
)

// AuroraSourceSettings are the keys of an aurora-snapshot or aurora-pitr source.
type AuroraSourceSettings struct {
	Region string `yaml:"region" json:"region,omitempty"`
	// Cluster is the Aurora cluster whose snapshots or point in time are restored.
	Cluster       string   `yaml:"cluster" json:"cluster,omitempty"`
	SnapshotTypes []string `yaml:"snapshot_types" json:"snapshot_types,omitempty"`
	// RestoreTime is "latest" or an RFC 3339 time (aurora-pitr).
	RestoreTime string `yaml:"restore_time" json:"restore_time,omitempty"`
}

func init() {
	for _, typ := range []string{AuroraSnapshotSourceType, AuroraPITRSourceType} {
		drills.Register(drills.Backend{Kind: drills.KindSource, Type: typ,
			Settings: func() any { return &AuroraSourceSettings{} }, NewSource: newAuroraSourceFromSpec})
	}
	drills.Register(drills.Backend{Kind: drills.KindTarget, Type: AuroraTargetType,
		Settings: func() any { return &TargetSettings{} }, NewTarget: newAuroraTargetFromSpec})
}

// Validate checks the settings and that the drill restores into an aurora target.
func (s AuroraSourceSettings) Validate(spec *drills.Spec) []drills.SettingsProblem {
	ps := SourceSettings{Instance: s.Cluster, SnapshotTypes: s.SnapshotTypes}.snapshotProblems()
	if s.Cluster == "" {
		ps = append(ps, drills.SettingsProblem{Msg: "missing required field cluster (the Aurora DB cluster identifier)"})
	}
	if rt := s.RestoreTime; rt != "" {
		if spec.Source.Type != AuroraPITRSourceType {
			ps = append(ps, drills.SettingsProblem{Key: "restore_time", Msg: "restore_time applies to aurora-pitr only"})
		} else if _, err := time.Parse(time.RFC3339, rt); rt != "latest" && err != nil {
			ps = append(ps, drills.SettingsProblem{Key: "restore_time", Msg: fmt.Sprintf("restore_time %q: want latest or an RFC 3339 time", rt)})
		}
	}
	if spec.Target.Type != AuroraTargetType {
		ps = append(ps, drills.SettingsProblem{DrillKey: "target", Msg: fmt.Sprintf("an %s source restores into an aurora target (add target: {type: aurora, ...})", spec.Source.Type)})
	}
	return ps
}

// Describe names the cluster.
func (s AuroraSourceSettings) Describe() string { return "cluster " + s.Cluster }

func newAuroraSourceFromSpec(ctx context.Context, spec *drills.Spec) (drills.Source, error) {
	var s AuroraSourceSettings
	if err := spec.Source.Decode(&s); err != nil {
		return nil, err
	}
	client, err := newClient(ctx, s.Region)
	if err != nil {
		return nil, err
	}
	if len(s.SnapshotTypes) == 0 {
		s.SnapshotTypes = []string{"automated", "manual"}
	}
	return &AuroraSource{s: s, pitr: spec.Source.Type == AuroraPITRSourceType, client: client}, nil
}

// AuroraSource finds the newest available cluster snapshot of a cluster,
// or its latest restorable time.
type AuroraSource struct {
	s      AuroraSourceSettings
	pitr   bool
	client *rds.Client
}

var _ drills.Source = (*AuroraSource)(nil)

// Latest returns the newest "available" cluster snapshot (RPO from its
// SnapshotCreateTime), or the point in time to restore (RPO from it:
// latest is the cluster's LatestRestorableTime as it is now).
func (s *AuroraSource) Latest(ctx context.Context) (drills.Backup, error) {
	notFound := fmt.Errorf("%w: Aurora cluster %q not found (check source.cluster and the region)", drills.ErrNoBackup, s.s.Cluster)
	if s.pitr {
		out, err := s.client.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(s.s.Cluster)})
		if isCode(err, "DBClusterNotFoundFault") {
			return drills.Backup{}, notFound
		}
		if err != nil {
			return drills.Backup{}, explain("DescribeDBClusters", err)
		}
		if len(out.DBClusters) == 0 || out.DBClusters[0].LatestRestorableTime == nil {
			return drills.Backup{}, fmt.Errorf("%w: Aurora cluster %s has no restorable time", drills.ErrNoBackup, s.s.Cluster)
		}
		c := out.DBClusters[0]
		at := c.LatestRestorableTime.UTC().Truncate(time.Second)
		if rt := s.s.RestoreTime; rt != "" && rt != "latest" {
			t, err := time.Parse(time.RFC3339, rt)
			if err != nil {
				return drills.Backup{}, fmt.Errorf("restore_time %q: want latest or an RFC 3339 time", rt)
			}
			if t.After(at) {
				return drills.Backup{}, fmt.Errorf("%w: restore_time %s is after the latest restorable time %s", drills.ErrNoBackup, t.UTC().Format(time.RFC3339), at.Format(time.RFC3339))
			}
			at = t.UTC()
		}
		return drills.Backup{ID: s.s.Cluster + "@" + at.Format(time.RFC3339), CreatedAt: at, CreatedAtSource: "point in time",
			Format: FormatAuroraPITR, RecoveredTo: &at, Details: map[string]string{
				"source_cluster": s.s.Cluster, "restore_time": at.Format(time.RFC3339),
				"latest_restorable_time": c.LatestRestorableTime.UTC().Format(time.RFC3339),
				"engine":                 aws.ToString(c.Engine), "engine_version": aws.ToString(c.EngineVersion),
				"encrypted": strconv.FormatBool(aws.ToBool(c.StorageEncrypted)),
			}}, nil
	}
	var best *types.DBClusterSnapshot
	var candidates []drills.Candidate
	p := rds.NewDescribeDBClusterSnapshotsPaginator(s.client, &rds.DescribeDBClusterSnapshotsInput{DBClusterIdentifier: aws.String(s.s.Cluster)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if isCode(err, "DBClusterNotFoundFault") {
			return drills.Backup{}, notFound
		}
		if err != nil {
			return drills.Backup{}, explain("DescribeDBClusterSnapshots", err)
		}
		best, candidates = newestSnapshot(page.DBClusterSnapshots, s.s.SnapshotTypes, best, candidates, func(sn *types.DBClusterSnapshot) snapshotFacts {
			return snapshotFacts{sn.DBClusterSnapshotIdentifier, sn.Status, sn.SnapshotType, sn.SnapshotCreateTime}
		})
	}
	if best == nil {
		if _, err := s.client.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(s.s.Cluster)}); isCode(err, "DBClusterNotFoundFault") {
			return drills.Backup{}, notFound
		}
		return drills.Backup{}, fmt.Errorf("%w: no available %v cluster snapshot of Aurora cluster %s", drills.ErrNoBackup, s.s.SnapshotTypes, s.s.Cluster)
	}
	sort.SliceStable(candidates, func(i, j int) bool { return candidates[i].Time.After(candidates[j].Time) })
	return drills.Backup{ID: aws.ToString(best.DBClusterSnapshotIdentifier), CreatedAt: best.SnapshotCreateTime.UTC(), CreatedAtSource: "snapshot create time",
		Format: FormatAuroraSnapshot, Details: map[string]string{
			"snapshot_arn": aws.ToString(best.DBClusterSnapshotArn), "snapshot_type": aws.ToString(best.SnapshotType),
			"source_cluster": s.s.Cluster, "engine": aws.ToString(best.Engine), "engine_version": aws.ToString(best.EngineVersion),
			"encrypted": strconv.FormatBool(aws.ToBool(best.StorageEncrypted)),
		},
		Selection: drills.Select(fmt.Sprintf("the newest available %v cluster snapshot of Aurora cluster %s by SnapshotCreateTime", s.s.SnapshotTypes, s.s.Cluster), candidates)}, nil
}

// Reopen returns a recorded backup as it was: nothing needs fetching.
func (s *AuroraSource) Reopen(_ context.Context, b drills.Backup) (drills.Backup, error) {
	return b, nil
}

func newAuroraTargetFromSpec(ctx context.Context, spec *drills.Spec) (drills.Target, error) {
	var t TargetSettings
	if err := spec.Target.Decode(&t); err != nil {
		return nil, err
	}
	var src AuroraSourceSettings
	if spec.Source.Type == AuroraSnapshotSourceType || spec.Source.Type == AuroraPITRSourceType {
		if err := spec.Source.Decode(&src); err != nil {
			return nil, err
		}
	}
	inner, err := NewTarget(ctx, TargetConfig{Region: t.Region, InstanceClass: t.InstanceClass, SubnetGroup: t.SubnetGroup,
		AllowDefaultNetwork: t.AllowDefaultNetwork, SecurityGroups: t.SecurityGroups, Tags: t.Tags, Database: t.Database,
		CABundle: t.CABundle, PollInterval: t.PollInterval, SourceInstance: src.Cluster})
	if err != nil {
		return nil, errors.New(strings.NewReplacer("rds target", "aurora target").Replace(err.Error())) // same rules, its own name
	}
	return &AuroraTarget{t: inner}, nil
}

// AuroraTarget restores into isolated, tagged Aurora clusters, each with
// one instance.
type AuroraTarget struct {
	t *Target
}

var (
	_ drills.Target    = (*AuroraTarget)(nil)
	_ drills.Sweepable = (*AuroraTarget)(nil)
)

// Plan names the cluster drill-<drill>-<run id>; its instance is the same
// name with -1.
func (a *AuroraTarget) Plan(run drills.RunRef) (drills.Instance, error) {
	in, err := a.t.Plan(run)
	if err != nil {
		return in, errors.New(strings.NewReplacer("instance id", "cluster id", "source instance", "source cluster").Replace(err.Error()))
	}
	in.Type = AuroraTargetType
	in.Details["instance"] = in.ID + "-1"
	return in, nil
}

func (a *AuroraTarget) describeCluster(ctx context.Context, id string) (*types.DBCluster, error) {
	out, err := a.t.client.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(id)})
	if isCode(err, "DBClusterNotFoundFault") {
		return nil, nil
	}
	if err != nil {
		return nil, explain("DescribeDBClusters", err)
	}
	if len(out.DBClusters) == 0 {
		return nil, nil
	}
	return &out.DBClusters[0], nil
}

// failedCluster are cluster states a restore does not come back from.
var failedCluster = []string{"failed", "inaccessible-encryption-credentials", "inaccessible-encryption-credentials-recoverable", "incompatible-parameters", "incompatible-restore", "migration-failed"}

// Provision asks RDS to restore the backup into a new cluster (once),
// waits until it is available, creates its instance (once) and waits
// until that is available — each wait a drills.WaitError.
func (a *AuroraTarget) Provision(ctx context.Context, in *drills.Instance, b drills.Backup, progress drills.Progress) error {
	c, err := a.describeCluster(ctx, in.ID)
	if err != nil {
		return err
	}
	if c == nil {
		if stateOf(in).RestoreRequested {
			return fmt.Errorf("cluster %s disappeared while being created", in.ID)
		}
		if err := a.restore(ctx, in, b); err != nil {
			return err
		}
		requested(in, false)
		progress.Say("cluster restore requested: " + in.ID)
		return a.t.wait(in, "creating")
	}
	if !ours(c.TagList, in.RunID) {
		return fmt.Errorf("%w: a cluster %s exists without drill's tags for run %d", drills.ErrNotManaged, in.ID, in.RunID)
	}
	switch status := aws.ToString(c.Status); {
	case slices.Contains(failedCluster, status):
		return fmt.Errorf("cluster %s is %s: the restore failed on AWS's side", in.ID, status)
	case status == "deleting":
		return fmt.Errorf("cluster %s is being deleted", in.ID)
	case status != "available":
		progress.Say("cluster " + in.ID + " is " + status)
		return a.t.wait(in, status)
	}
	in.Details["cluster_arn"] = aws.ToString(c.DBClusterArn)
	in.Details["engine_version"] = aws.ToString(c.EngineVersion)
	in.Details["master_username"] = aws.ToString(c.MasterUsername)
	id := in.Details["instance"]
	db, err := a.t.describe(ctx, id)
	if err != nil {
		return err
	}
	if db == nil {
		if stateOf(in).InstanceRequested {
			return fmt.Errorf("instance %s of cluster %s disappeared while being created", id, in.ID)
		}
		_, err := a.t.client.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String(id),
			DBClusterIdentifier: aws.String(in.ID), DBInstanceClass: aws.String(a.t.cfg.InstanceClass), Engine: aws.String(auroraEngine),
			PubliclyAccessible: aws.Bool(false), Tags: a.t.tags(in)})
		if err != nil {
			return explain("CreateDBInstance", err)
		}
		requested(in, true)
		progress.Say("instance " + id + " requested in cluster " + in.ID)
		return a.t.wait(in, "creating-instance")
	}
	if !ours(db.TagList, in.RunID) {
		return fmt.Errorf("%w: an instance %s exists without drill's tags for run %d", drills.ErrNotManaged, id, in.RunID)
	}
	switch status := aws.ToString(db.DBInstanceStatus); status {
	case "available":
		in.Details["instance_arn"] = aws.ToString(db.DBInstanceArn)
		if c.Endpoint != nil {
			in.Details["endpoint"] = fmt.Sprintf("%s:%d", aws.ToString(c.Endpoint), aws.ToInt32(c.Port))
		}
		ready(in)
		return nil
	case "failed", "incompatible-parameters", "incompatible-network", "inaccessible-encryption-credentials", "storage-full":
		return fmt.Errorf("instance %s is %s: creating it failed on AWS's side", id, status)
	default:
		progress.Say("instance " + id + " is " + status)
		return a.t.wait(in, "instance-"+status)
	}
}

// restore calls RestoreDBClusterFromSnapshot or ...ToPointInTime with the
// isolation settings and the tool's tags.
func (a *AuroraTarget) restore(ctx context.Context, in *drills.Instance, b drills.Backup) error {
	var subnet *string
	if a.t.cfg.SubnetGroup != "" {
		subnet = aws.String(a.t.cfg.SubnetGroup)
	}
	switch b.Format {
	case FormatAuroraSnapshot:
		_, err := a.t.client.RestoreDBClusterFromSnapshot(ctx, &rds.RestoreDBClusterFromSnapshotInput{
			DBClusterIdentifier: aws.String(in.ID), SnapshotIdentifier: aws.String(b.ID), Engine: aws.String(auroraEngine),
			DBSubnetGroupName: subnet, VpcSecurityGroupIds: a.t.cfg.SecurityGroups, DeletionProtection: aws.Bool(false), Tags: a.t.tags(in)})
		if err != nil {
			return explain("RestoreDBClusterFromSnapshot", err)
		}
	case FormatAuroraPITR:
		at := b.CreatedAt
		_, err := a.t.client.RestoreDBClusterToPointInTime(ctx, &rds.RestoreDBClusterToPointInTimeInput{
			DBClusterIdentifier: aws.String(in.ID), SourceDBClusterIdentifier: aws.String(b.Details["source_cluster"]), RestoreToTime: &at,
			DBSubnetGroupName: subnet, VpcSecurityGroupIds: a.t.cfg.SecurityGroups, DeletionProtection: aws.Bool(false), Tags: a.t.tags(in)})
		if err != nil {
			return explain("RestoreDBClusterToPointInTime", err)
		}
	default:
		return fmt.Errorf("backup %s (%s) is not an Aurora cluster snapshot or point in time; the aurora target restores those only", b.ID, b.Format)
	}
	return nil
}

// Restore sets a random master password on the cluster (kept in this
// process's memory only), waits until the database answers over TLS at
// the cluster endpoint, and sets in.DSN.
func (a *AuroraTarget) Restore(ctx context.Context, in *drills.Instance, b drills.Backup, progress drills.Progress) error {
	a.t.mu.Lock()
	pw := a.t.passwords[in.ID]
	a.t.mu.Unlock()
	if pw == "" {
		pw = randomPassword()
		_, err := a.t.client.ModifyDBCluster(ctx, &rds.ModifyDBClusterInput{DBClusterIdentifier: aws.String(in.ID),
			MasterUserPassword: aws.String(pw), ApplyImmediately: aws.Bool(true)})
		if err != nil {
			return explain("ModifyDBCluster", err)
		}
		a.t.mu.Lock()
		a.t.passwords[in.ID] = pw
		a.t.mu.Unlock()
		progress.Say("master password reset on cluster " + in.ID)
		return a.t.wait(in, "resetting-master-credentials")
	}
	c, err := a.describeCluster(ctx, in.ID)
	if err != nil {
		return err
	}
	if c == nil {
		return fmt.Errorf("cluster %s is gone", in.ID)
	}
	if status := aws.ToString(c.Status); status != "available" || c.Endpoint == nil {
		return a.t.wait(in, status)
	}
	return a.t.tryConnect(ctx, in, a.t.dsnFor(aws.ToString(c.Endpoint), aws.ToInt32(c.Port), aws.ToString(c.MasterUsername), pw), progress)
}

// Destroy deletes the cluster's instances, waits until they are gone,
// then deletes the cluster (no final snapshot) and waits until it is gone
// — after reading the tags: the cluster and each instance must carry
// ManagedBy=drill and DrillRun=<in.RunID>, else nothing happens and the
// error wraps ErrNotManaged.
func (a *AuroraTarget) Destroy(ctx context.Context, in drills.Instance) error {
	c, err := a.describeCluster(ctx, in.ID)
	if err != nil || c == nil {
		return err
	}
	out, err := a.t.client.ListTagsForResource(ctx, &rds.ListTagsForResourceInput{ResourceName: c.DBClusterArn})
	if err != nil {
		return explain("ListTagsForResource", err)
	}
	if !ours(out.TagList, in.RunID) {
		return fmt.Errorf("%w: Aurora cluster %s is not tagged %s=%s and %s=%d", drills.ErrNotManaged, in.ID, TagManagedBy, managedBy, TagRun, in.RunID)
	}
	// Every instance first: a cluster with instances cannot be deleted.
	for _, m := range c.DBClusterMembers {
		id := aws.ToString(m.DBInstanceIdentifier)
		db, err := a.t.describe(ctx, id)
		if err != nil {
			return err
		}
		if db == nil || aws.ToString(db.DBInstanceStatus) == "deleting" {
			continue
		}
		if !ours(db.TagList, in.RunID) {
			return fmt.Errorf("%w: instance %s of cluster %s is not tagged %s=%s and %s=%d: delete it yourself first", drills.ErrNotManaged, id, in.ID, TagManagedBy, managedBy, TagRun, in.RunID)
		}
		_, err = a.t.client.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String(id), SkipFinalSnapshot: aws.Bool(true)})
		if err != nil && !isCode(err, "DBInstanceNotFound") {
			return explain("DeleteDBInstance", err)
		}
	}
	a.t.mu.Lock()
	delete(a.t.passwords, in.ID)
	a.t.mu.Unlock()
	if err := a.until(ctx, "the instances of cluster "+in.ID+" are deleted", func(c *types.DBCluster) bool { return c == nil || len(c.DBClusterMembers) == 0 }, in.ID); err != nil {
		return err
	}
	if c, err := a.describeCluster(ctx, in.ID); err != nil || c == nil {
		return err
	} else if aws.ToString(c.Status) != "deleting" {
		_, err := a.t.client.DeleteDBCluster(ctx, &rds.DeleteDBClusterInput{DBClusterIdentifier: aws.String(in.ID), SkipFinalSnapshot: aws.Bool(true)})
		if err != nil && !isCode(err, "DBClusterNotFoundFault") {
			return explain("DeleteDBCluster", err)
		}
	}
	return a.until(ctx, "cluster "+in.ID+" is deleted", func(c *types.DBCluster) bool { return c == nil }, in.ID)
}

// until polls the cluster until done says so or ctx ends.
func (a *AuroraTarget) until(ctx context.Context, what string, done func(*types.DBCluster) bool, id string) error {
	every := min(a.t.cfg.PollInterval, 15*time.Second)
	for {
		c, err := a.describeCluster(ctx, id)
		if err != nil {
			return err
		}
		if done(c) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting until %s: %w (the sweeper finishes the teardown)", what, ctx.Err())
		case <-time.After(every):
		}
	}
}

// Managed lists clusters tagged ManagedBy=drill (and only those).
func (a *AuroraTarget) Managed(ctx context.Context) ([]drills.Instance, error) {
	var out []drills.Instance
	p := rds.NewDescribeDBClustersPaginator(a.t.client, &rds.DescribeDBClustersInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, explain("DescribeDBClusters", err)
		}
		for _, c := range page.DBClusters {
			if tagValue(c.TagList, TagManagedBy) != managedBy || aws.ToString(c.Status) == "deleting" {
				continue
			}
			runID, _ := strconv.ParseInt(tagValue(c.TagList, TagRun), 10, 64)
			id := aws.ToString(c.DBClusterIdentifier)
			out = append(out, drills.Instance{Type: AuroraTargetType, ID: id, RunID: runID,
				Drill: tagValue(c.TagList, TagDrill), StoreID: tagValue(c.TagList, TagStore), Details: map[string]string{"instance": id + "-1"}})
		}
	}
	return out, nil
}

// ConnectHint tells how to reach a kept cluster. The password drill set
// is gone with the process: set a new one to connect.
func (a *AuroraTarget) ConnectHint(in drills.Instance) string {
	return fmt.Sprintf("Aurora cluster %s (%s): set a password with\n  aws rds modify-db-cluster --db-cluster-identifier %s --master-user-password ... --apply-immediately\nthen connect with sslmode=require. Discard it when done (its record then says so):\n  drill discard %d",
		in.ID, in.Details["endpoint"], in.ID, in.RunID)
}
