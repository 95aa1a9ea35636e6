package rds

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"drill/drills"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TargetType is the target type of this package in drill.yaml.
const TargetType = "rds"

// The tool's own tags. An instance is drill's for run R only when it
// carries ManagedBy=drill and DrillRun=R.
const (
	TagManagedBy = "ManagedBy"
	TagDrill     = "Drill"
	TagRun       = "DrillRun"
	TagStore     = "DrillStore"
	managedBy    = "drill"
)

// TargetConfig configures RDS targets.
type TargetConfig struct {
	Region              string
	InstanceClass       string
	SubnetGroup         string
	AllowDefaultNetwork bool
	SecurityGroups      []string
	// Tags are added to the tool's own.
	Tags map[string]string
	// Database is the database checks run in (default postgres).
	Database string
	// CABundle, when set, makes connections verify-full against it.
	CABundle string
	// PollInterval is the first wait between status checks (default 15s);
	// it doubles up to a minute.
	PollInterval time.Duration
	// SourceInstance is the production instance: drill's instance id
	// never equals it or starts with it.
	SourceInstance string
}

// Target restores into isolated, tagged RDS instances.
type Target struct {
	cfg    TargetConfig
	client *rds.Client

	mu sync.Mutex
	// passwords of instances this process set, in memory only.
	passwords map[string]string
}

var (
	_ drills.Target    = (*Target)(nil)
	_ drills.Sweepable = (*Target)(nil)
)

// NewTarget returns an RDS target.
func NewTarget(ctx context.Context, cfg TargetConfig) (*Target, error) {
	if cfg.SubnetGroup == "" && !cfg.AllowDefaultNetwork {
		return nil, fmt.Errorf("rds target needs subnet_group (an isolated DB subnet group) or allow_default_network: true")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 15 * time.Second
	}
	client, err := newClient(ctx, cfg.Region)
	if err != nil {
		return nil, err
	}
	return &Target{cfg: cfg, client: client, passwords: map[string]string{}}, nil
}

// Plan names the instance drill-<drill>-<run id>.
func (t *Target) Plan(run drills.RunRef) (drills.Instance, error) {
	id := fmt.Sprintf("drill-%s-%d", run.Drill, run.ID)
	if src := t.cfg.SourceInstance; src != "" && (id == src || strings.HasPrefix(src, id) || strings.HasPrefix(id, src)) {
		return drills.Instance{}, fmt.Errorf("instance id %s would collide with the source instance %s", id, src)
	}
	return drills.Instance{Type: TargetType, ID: id, RunID: run.ID, Drill: run.Drill, StoreID: run.StoreID,
		Details: map[string]string{"instance_class": t.cfg.InstanceClass}}, nil
}

func (t *Target) tags(in *drills.Instance) []types.Tag {
	tags := []types.Tag{
		{Key: aws.String(TagManagedBy), Value: aws.String(managedBy)},
		{Key: aws.String(TagDrill), Value: aws.String(in.Drill)},
		{Key: aws.String(TagRun), Value: aws.String(strconv.FormatInt(in.RunID, 10))},
	}
	if in.StoreID != "" {
		tags = append(tags, types.Tag{Key: aws.String(TagStore), Value: aws.String(in.StoreID)})
	}
	for k, v := range t.cfg.Tags {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return tags
}

// waitState is the RDS targets' own state between calls, kept in
// Instance.State: the record's details hold facts only.
type waitState struct {
	Polls             int    `json:"polls,omitempty"`
	Status            string `json:"status,omitempty"`
	RestoreRequested  bool   `json:"restore_requested,omitempty"`
	InstanceRequested bool   `json:"instance_requested,omitempty"`
}

// stateOf reads the instance's wait state. A run that waited under an
// earlier version of drill kept it in the details: it is moved over.
func stateOf(in *drills.Instance) waitState {
	var s waitState
	if len(in.State) > 0 {
		_ = json.Unmarshal(in.State, &s) // written by save only
	}
	if n, err := strconv.Atoi(in.Details["polls"]); err == nil {
		s.Polls = n
	}
	s.RestoreRequested = s.RestoreRequested || in.Details["restore_requested"] == "true"
	s.InstanceRequested = s.InstanceRequested || in.Details["instance_requested"] == "true"
	for _, k := range []string{"polls", "status", "restore_requested", "instance_requested"} {
		delete(in.Details, k)
	}
	return s
}

func (s waitState) save(in *drills.Instance) {
	in.State, _ = json.Marshal(s) // a struct of plain fields always marshals
}

// requested records that the restore (or, for Aurora, the instance) was
// asked for, so that a later call tells "not there yet" from "gone".
func requested(in *drills.Instance, instance bool) {
	s := stateOf(in)
	if instance {
		s.InstanceRequested = true
	} else {
		s.RestoreRequested = true
	}
	s.save(in)
}

// wait returns a WaitError whose delay doubles with each poll of the instance.
func (t *Target) wait(in *drills.Instance, status string) error {
	s := stateOf(in)
	n := s.Polls
	s.Polls, s.Status = n+1, status
	s.save(in)
	return drills.Wait(drills.Doubling(t.cfg.PollInterval, n, time.Minute), "instance "+in.ID+" "+status)
}

// ready ends a wait: the next one starts polling fast again.
func ready(in *drills.Instance) {
	s := stateOf(in)
	s.Polls, s.Status = 0, ""
	s.save(in)
}

// describe returns the instance, or nil when it does not exist.
func (t *Target) describe(ctx context.Context, id string) (*types.DBInstance, error) {
	out, err := t.client.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)})
	if isCode(err, "DBInstanceNotFound") {
		return nil, nil
	}
	if err != nil {
		return nil, explain("DescribeDBInstances", err)
	}
	if len(out.DBInstances) == 0 {
		return nil, nil
	}
	return &out.DBInstances[0], nil
}

// Provision asks RDS to restore the backup into a new instance (once),
// then waits, by returning drills.WaitError, until it is available.
func (t *Target) Provision(ctx context.Context, in *drills.Instance, b drills.Backup, progress drills.Progress) error {
	db, err := t.describe(ctx, in.ID)
	if err != nil {
		return err
	}
	if db == nil {
		if stateOf(in).RestoreRequested {
			return fmt.Errorf("instance %s disappeared while being created", in.ID)
		}
		if err := t.restore(ctx, in, b); err != nil {
			return err
		}
		requested(in, false)
		progress.Say("restore requested: " + in.ID)
		return t.wait(in, "creating")
	}
	if !ours(db.TagList, in.RunID) {
		return fmt.Errorf("%w: an instance %s exists without drill's tags for run %d", drills.ErrNotManaged, in.ID, in.RunID)
	}
	switch status := aws.ToString(db.DBInstanceStatus); status {
	case "available":
		in.Details["arn"] = aws.ToString(db.DBInstanceArn)
		in.Details["engine_version"] = aws.ToString(db.EngineVersion)
		in.Details["master_username"] = aws.ToString(db.MasterUsername)
		if db.Endpoint != nil {
			in.Details["endpoint"] = fmt.Sprintf("%s:%d", aws.ToString(db.Endpoint.Address), aws.ToInt32(db.Endpoint.Port))
		}
		ready(in)
		return nil
	case "failed", "incompatible-restore", "incompatible-parameters", "incompatible-network", "inaccessible-encryption-credentials", "restore-error", "storage-full":
		return fmt.Errorf("instance %s is %s: the restore failed on AWS's side", in.ID, status)
	case "deleting":
		return fmt.Errorf("instance %s is being deleted", in.ID)
	default:
		progress.Say("instance " + in.ID + " is " + status)
		return t.wait(in, status)
	}
}

// restore calls RestoreDBInstanceFromDBSnapshot or ...ToPointInTime with
// the isolation settings and the tool's tags.
func (t *Target) restore(ctx context.Context, in *drills.Instance, b drills.Backup) error {
	var subnet *string
	if t.cfg.SubnetGroup != "" {
		subnet = aws.String(t.cfg.SubnetGroup)
	}
	switch b.Format {
	case FormatSnapshot:
		_, err := t.client.RestoreDBInstanceFromDBSnapshot(ctx, &rds.RestoreDBInstanceFromDBSnapshotInput{
			DBInstanceIdentifier: aws.String(in.ID), DBSnapshotIdentifier: aws.String(b.ID),
			DBInstanceClass: aws.String(t.cfg.InstanceClass), DBSubnetGroupName: subnet, VpcSecurityGroupIds: t.cfg.SecurityGroups,
			PubliclyAccessible: aws.Bool(false), MultiAZ: aws.Bool(false), DeletionProtection: aws.Bool(false),
			BackupRetentionPeriod: aws.Int32(0), Tags: t.tags(in)})
		if err != nil {
			return explain("RestoreDBInstanceFromDBSnapshot", err)
		}
	case FormatPITR:
		input := &rds.RestoreDBInstanceToPointInTimeInput{
			SourceDBInstanceIdentifier: aws.String(b.Details["source_instance"]), TargetDBInstanceIdentifier: aws.String(in.ID),
			DBInstanceClass: aws.String(t.cfg.InstanceClass), DBSubnetGroupName: subnet, VpcSecurityGroupIds: t.cfg.SecurityGroups,
			PubliclyAccessible: aws.Bool(false), MultiAZ: aws.Bool(false), DeletionProtection: aws.Bool(false),
			BackupRetentionPeriod: aws.Int32(0), Tags: t.tags(in)}
		// exactly the time located (latest: the latest restorable time then),
		// so that the RPO is measured from the point restored
		at := b.CreatedAt
		input.RestoreTime = &at
		if _, err := t.client.RestoreDBInstanceToPointInTime(ctx, input); err != nil {
			return explain("RestoreDBInstanceToPointInTime", err)
		}
	default:
		return fmt.Errorf("backup %s (%s) is not an RDS snapshot or point in time; the rds target restores those only", b.ID, b.Format)
	}
	return nil
}

func ours(tags []types.Tag, runID int64) bool {
	return tagValue(tags, TagManagedBy) == managedBy && tagValue(tags, TagRun) == strconv.FormatInt(runID, 10)
}

func tagValue(tags []types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

// randomPassword is a one-off master password: 26 characters (A–Z, 2–7:
// 130 bits), within every RDS engine's rules.
func randomPassword() string { return rand.Text() }

// Restore sets a random master password (kept in this process's memory
// only), waits until it applies and the database answers over TLS, and
// sets in.DSN.
func (t *Target) Restore(ctx context.Context, in *drills.Instance, b drills.Backup, progress drills.Progress) error {
	t.mu.Lock()
	pw := t.passwords[in.ID]
	t.mu.Unlock()
	if pw == "" { // first time here, or resumed in another process: set one
		pw = randomPassword()
		_, err := t.client.ModifyDBInstance(ctx, &rds.ModifyDBInstanceInput{DBInstanceIdentifier: aws.String(in.ID),
			MasterUserPassword: aws.String(pw), ApplyImmediately: aws.Bool(true)})
		if err != nil {
			return explain("ModifyDBInstance", err)
		}
		t.mu.Lock()
		t.passwords[in.ID] = pw
		t.mu.Unlock()
		progress.Say("master password reset on " + in.ID)
		return t.wait(in, "resetting-master-credentials")
	}
	db, err := t.describe(ctx, in.ID)
	if err != nil {
		return err
	}
	if db == nil {
		return fmt.Errorf("instance %s is gone", in.ID)
	}
	if status := aws.ToString(db.DBInstanceStatus); status != "available" || db.Endpoint == nil {
		return t.wait(in, status)
	}
	return t.tryConnect(ctx, in, t.dsn(db, pw), progress)
}

func (t *Target) database() string {
	if t.cfg.Database != "" {
		return t.cfg.Database
	}
	return "postgres"
}

func (t *Target) dsn(db *types.DBInstance, pw string) string {
	return t.dsnFor(aws.ToString(db.Endpoint.Address), aws.ToInt32(db.Endpoint.Port), aws.ToString(db.MasterUsername), pw)
}

// dsnFor connects to host:port as user over TLS (verify-full with
// ca_bundle, else require).
func (t *Target) dsnFor(host string, port int32, user, pw string) string {
	q := drills.DSNValue
	ssl := "sslmode=require"
	if t.cfg.CABundle != "" {
		ssl = "sslmode=verify-full sslrootcert=" + q(t.cfg.CABundle)
	}
	return fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s %s connect_timeout=10 application_name=drill",
		q(host), port, q(user), q(pw), q(t.database()), ssl)
}

// tryConnect connects once with dsn: nil when the database answers, a
// WaitError while it does not yet, an error when its certificate does not
// verify.
func (t *Target) tryConnect(ctx context.Context, in *drills.Instance, dsn string, progress drills.Progress) error {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, dsn)
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return fmt.Errorf("the certificate of %s does not verify against ca_bundle %s: %v", in.ID, t.cfg.CABundle, certErr.Err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name: waiting does not help
		return fmt.Errorf("database %q does not exist in %s: set target.database to a database of the backup", t.database(), in.ID)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		progress.Say("the database does not answer yet")
		return t.wait(in, "connecting")
	}
	conn.Close(context.Background())
	ready(in)
	in.DSN = dsn
	return nil
}

// Destroy deletes the instance after reading its tags: it must carry
// ManagedBy=drill and DrillRun=<in.RunID>, else nothing happens and the
// error wraps ErrNotManaged. No final snapshot is kept.
func (t *Target) Destroy(ctx context.Context, in drills.Instance) error {
	db, err := t.describe(ctx, in.ID)
	if err != nil {
		return err
	}
	if db == nil {
		return nil
	}
	out, err := t.client.ListTagsForResource(ctx, &rds.ListTagsForResourceInput{ResourceName: db.DBInstanceArn})
	if err != nil {
		return explain("ListTagsForResource", err)
	}
	if !ours(out.TagList, in.RunID) {
		return fmt.Errorf("%w: RDS instance %s is not tagged %s=%s and %s=%d", drills.ErrNotManaged, in.ID, TagManagedBy, managedBy, TagRun, in.RunID)
	}
	if c := aws.ToString(db.DBClusterIdentifier); c != "" {
		return fmt.Errorf("%w: RDS instance %s is a member of Aurora cluster %s: the aurora target removes it with its cluster", drills.ErrNotManaged, in.ID, c)
	}
	t.mu.Lock()
	delete(t.passwords, in.ID)
	t.mu.Unlock()
	if aws.ToString(db.DBInstanceStatus) == "deleting" {
		return nil
	}
	_, err = t.client.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String(in.ID),
		SkipFinalSnapshot: aws.Bool(true), DeleteAutomatedBackups: aws.Bool(true)})
	if isCode(err, "DBInstanceNotFound") {
		return nil
	}
	if err != nil {
		return explain("DeleteDBInstance", err)
	}
	return nil
}

// Managed lists instances tagged ManagedBy=drill (and only those), but
// for members of an Aurora cluster: those belong to the aurora target,
// which removes them with their cluster.
func (t *Target) Managed(ctx context.Context) ([]drills.Instance, error) {
	var out []drills.Instance
	p := rds.NewDescribeDBInstancesPaginator(t.client, &rds.DescribeDBInstancesInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, explain("DescribeDBInstances", err)
		}
		for _, db := range page.DBInstances {
			if tagValue(db.TagList, TagManagedBy) != managedBy || aws.ToString(db.DBInstanceStatus) == "deleting" || db.DBClusterIdentifier != nil {
				continue
			}
			runID, _ := strconv.ParseInt(tagValue(db.TagList, TagRun), 10, 64)
			out = append(out, drills.Instance{Type: TargetType, ID: aws.ToString(db.DBInstanceIdentifier), RunID: runID,
				Drill: tagValue(db.TagList, TagDrill), StoreID: tagValue(db.TagList, TagStore), Details: map[string]string{}})
		}
	}
	return out, nil
}

// ConnectHint tells how to reach a kept instance. The password drill set
// is gone with the process: set a new one to connect.
func (t *Target) ConnectHint(in drills.Instance) string {
	return fmt.Sprintf("RDS instance %s (%s): set a password with\n  aws rds modify-db-instance --db-instance-identifier %s --master-user-password ... --apply-immediately\nthen connect with sslmode=require. Discard it when done (its record then says so):\n  drill discard %d",
		in.ID, in.Details["endpoint"], in.ID, in.RunID)
}
