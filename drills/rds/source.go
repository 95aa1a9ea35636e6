package rds

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"drill/drills"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
)

// Backup formats of this package.
const (
	FormatSnapshot = "rds-snapshot"
	FormatPITR     = "rds-pitr"
)

// SourceConfig configures an RDS source.
type SourceConfig struct {
	// PointInTime selects rds-pitr; else the newest snapshot is restored.
	PointInTime bool
	Instance    string
	Region      string
	// SnapshotTypes filters snapshots (automated, manual; default both).
	SnapshotTypes []string
	// RestoreTime is "latest" (default) or an RFC 3339 time (rds-pitr).
	RestoreTime string
}

// Source finds the newest available snapshot of an instance, or its
// latest restorable time.
type Source struct {
	cfg    SourceConfig
	client *rds.Client
}

var _ drills.Source = (*Source)(nil)

// NewSource returns an RDS source.
func NewSource(ctx context.Context, cfg SourceConfig) (*Source, error) {
	client, err := newClient(ctx, cfg.Region)
	if err != nil {
		return nil, err
	}
	if len(cfg.SnapshotTypes) == 0 {
		cfg.SnapshotTypes = []string{"automated", "manual"}
	}
	return &Source{cfg: cfg, client: client}, nil
}

// Latest returns the newest "available" snapshot (its SnapshotCreateTime
// is the RPO's reference), or for point-in-time restores the restore time.
func (s *Source) Latest(ctx context.Context) (drills.Backup, error) {
	if s.cfg.PointInTime {
		return s.pointInTime(ctx)
	}
	var best *types.DBSnapshot
	var candidates []drills.Candidate
	p := rds.NewDescribeDBSnapshotsPaginator(s.client, &rds.DescribeDBSnapshotsInput{DBInstanceIdentifier: aws.String(s.cfg.Instance)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if isCode(err, "DBInstanceNotFound") {
			return drills.Backup{}, fmt.Errorf("%w: RDS instance %q not found (check source.instance and the region)", drills.ErrNoBackup, s.cfg.Instance)
		}
		if err != nil {
			return drills.Backup{}, explain("DescribeDBSnapshots", err)
		}
		best, candidates = newestSnapshot(page.DBSnapshots, s.cfg.SnapshotTypes, best, candidates, func(sn *types.DBSnapshot) snapshotFacts {
			return snapshotFacts{sn.DBSnapshotIdentifier, sn.Status, sn.SnapshotType, sn.SnapshotCreateTime}
		})
	}
	if best == nil {
		// RDS lists no snapshots for an unknown instance: say which it is.
		if _, err := s.client.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(s.cfg.Instance)}); isCode(err, "DBInstanceNotFound") {
			return drills.Backup{}, fmt.Errorf("%w: RDS instance %q not found and has no snapshots (check source.instance and the region)", drills.ErrNoBackup, s.cfg.Instance)
		}
		return drills.Backup{}, fmt.Errorf("%w: no available %v snapshot of RDS instance %s", drills.ErrNoBackup, s.cfg.SnapshotTypes, s.cfg.Instance)
	}
	sort.SliceStable(candidates, func(i, j int) bool { return candidates[i].Time.After(candidates[j].Time) })
	return drills.Backup{ID: aws.ToString(best.DBSnapshotIdentifier), CreatedAt: best.SnapshotCreateTime.UTC(), CreatedAtSource: "snapshot create time",
		Format: FormatSnapshot, Details: map[string]string{
			"snapshot_arn": aws.ToString(best.DBSnapshotArn), "snapshot_type": aws.ToString(best.SnapshotType),
			"source_instance": s.cfg.Instance, "engine": aws.ToString(best.Engine), "engine_version": aws.ToString(best.EngineVersion),
			"encrypted": strconv.FormatBool(aws.ToBool(best.Encrypted)),
		},
		Selection: drills.Select(fmt.Sprintf("the newest available %v snapshot of RDS instance %s by SnapshotCreateTime", s.cfg.SnapshotTypes, s.cfg.Instance), candidates)}, nil
}

func (s *Source) pointInTime(ctx context.Context) (drills.Backup, error) {
	out, err := s.client.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(s.cfg.Instance)})
	if isCode(err, "DBInstanceNotFound") {
		return drills.Backup{}, fmt.Errorf("%w: RDS instance %q not found (check source.instance and the region)", drills.ErrNoBackup, s.cfg.Instance)
	}
	if err != nil {
		return drills.Backup{}, explain("DescribeDBInstances", err)
	}
	if len(out.DBInstances) == 0 || out.DBInstances[0].LatestRestorableTime == nil {
		return drills.Backup{}, fmt.Errorf("%w: RDS instance %s has no restorable time (are automated backups on?)", drills.ErrNoBackup, s.cfg.Instance)
	}
	src := out.DBInstances[0]
	latest := src.LatestRestorableTime.UTC()
	at := latest // restored to exactly this time, which the RPO is measured from
	if s.cfg.RestoreTime != "" && s.cfg.RestoreTime != "latest" {
		t, err := time.Parse(time.RFC3339, s.cfg.RestoreTime)
		if err != nil {
			return drills.Backup{}, fmt.Errorf("restore_time %q: want latest or an RFC 3339 time", s.cfg.RestoreTime)
		}
		if t.After(latest) {
			return drills.Backup{}, fmt.Errorf("%w: restore_time %s is after the latest restorable time %s", drills.ErrNoBackup, t.UTC().Format(time.RFC3339), latest.Format(time.RFC3339))
		}
		at = t.UTC()
	}
	return drills.Backup{ID: s.cfg.Instance + "@" + at.Format(time.RFC3339), CreatedAt: at, CreatedAtSource: "point in time",
		Format: FormatPITR, Details: map[string]string{
			"source_instance": s.cfg.Instance, "restore_time": at.Format(time.RFC3339),
			"engine": aws.ToString(src.Engine), "engine_version": aws.ToString(src.EngineVersion),
			"encrypted": strconv.FormatBool(aws.ToBool(src.StorageEncrypted)),
		}}, nil
}

// Reopen returns a recorded backup as it was: nothing needs fetching.
func (s *Source) Reopen(_ context.Context, b drills.Backup) (drills.Backup, error) { return b, nil }

// snapshotFacts are what choosing a snapshot reads of one.
type snapshotFacts struct {
	id, status, typ *string
	created         *time.Time
}

// newestSnapshot adds a page of snapshots to the candidates (available
// ones of the wanted types) and returns the newest so far by creation
// time: RDS instance and Aurora cluster snapshots alike.
func newestSnapshot[T any](page []T, types []string, best *T, candidates []drills.Candidate, facts func(*T) snapshotFacts) (*T, []drills.Candidate) {
	for i := range page {
		sn := &page[i]
		f := facts(sn)
		if aws.ToString(f.status) != "available" || !slices.Contains(types, aws.ToString(f.typ)) || f.created == nil {
			continue
		}
		candidates = append(candidates, drills.Candidate{Name: aws.ToString(f.id), Time: *f.created})
		if best == nil || f.created.After(*facts(best).created) {
			best = sn
		}
	}
	return best, candidates
}
