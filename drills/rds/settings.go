package rds

import (
	"context"
	"fmt"
	"strings"
	"time"

	"drill/drills"
)

// Source types of this package in drill.yaml.
const (
	SnapshotSourceType = "rds-snapshot"
	PITRSourceType     = "rds-pitr"
)

// SourceSettings are the keys of an rds-snapshot or rds-pitr source.
type SourceSettings struct {
	Region string `yaml:"region" json:"region,omitempty"`
	// Instance is the RDS instance whose snapshots or point in time are restored.
	Instance      string   `yaml:"instance" json:"instance,omitempty"`
	SnapshotTypes []string `yaml:"snapshot_types" json:"snapshot_types,omitempty"`
	// RestoreTime is "latest" or an RFC 3339 time (rds-pitr).
	RestoreTime string `yaml:"restore_time" json:"restore_time,omitempty"`
}

// TargetSettings are the keys of an rds target.
type TargetSettings struct {
	Database            string            `yaml:"database" json:"database,omitempty"`
	Region              string            `yaml:"region" json:"region,omitempty"`
	InstanceClass       string            `yaml:"instance_class" json:"instance_class,omitempty"`
	SubnetGroup         string            `yaml:"subnet_group" json:"subnet_group,omitempty"`
	AllowDefaultNetwork bool              `yaml:"allow_default_network" json:"allow_default_network,omitempty"`
	SecurityGroups      []string          `yaml:"security_groups" json:"security_groups,omitempty"`
	Tags                map[string]string `yaml:"tags" json:"tags,omitempty"`
	CABundle            string            `yaml:"ca_bundle" json:"ca_bundle,omitempty"`
	// PollInterval is the first wait between status checks (default 15s).
	PollInterval time.Duration `yaml:"poll_interval" json:"poll_interval,omitempty"`
}

func init() {
	for _, typ := range []string{SnapshotSourceType, PITRSourceType} {
		drills.Register(drills.Backend{Kind: drills.KindSource, Type: typ,
			Settings: func() any { return &SourceSettings{} }, NewSource: newSourceFromSpec})
	}
	drills.Register(drills.Backend{Kind: drills.KindTarget, Type: TargetType,
		Settings: func() any { return &TargetSettings{} }, NewTarget: newTargetFromSpec})
}

// Validate checks the settings and that the drill restores into an rds target.
func (s SourceSettings) Validate(spec *drills.Spec) []drills.SettingsProblem {
	var ps []drills.SettingsProblem
	add := func(key, format string, args ...any) {
		ps = append(ps, drills.SettingsProblem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if s.Instance == "" {
		add("", "missing required field instance (the RDS instance identifier)")
	}
	ps = append(ps, s.snapshotProblems()...)
	if rt := s.RestoreTime; rt != "" {
		if spec.Source.Type != PITRSourceType {
			add("restore_time", "restore_time applies to rds-pitr only")
		} else if _, err := time.Parse(time.RFC3339, rt); rt != "latest" && err != nil {
			add("restore_time", "restore_time %q: want latest or an RFC 3339 time", rt)
		}
	}
	if spec.Target.Type != TargetType {
		ps = append(ps, drills.SettingsProblem{DrillKey: "target", Msg: fmt.Sprintf("an %s source restores into an rds target (add target: {type: rds, ...})", spec.Source.Type)})
	}
	return ps
}

// snapshotProblems checks snapshot_types.
func (s SourceSettings) snapshotProblems() []drills.SettingsProblem {
	var ps []drills.SettingsProblem
	for _, st := range s.SnapshotTypes {
		if st != "automated" && st != "manual" {
			ps = append(ps, drills.SettingsProblem{Key: "snapshot_types", Msg: fmt.Sprintf("snapshot_types: %q is not automated or manual", st)})
		}
	}
	return ps
}

// Describe names the instance.
func (s SourceSettings) Describe() string { return "instance " + s.Instance }

// Validate checks the settings.
func (t TargetSettings) Validate(*drills.Spec) []drills.SettingsProblem {
	var ps []drills.SettingsProblem
	if t.InstanceClass == "" {
		ps = append(ps, drills.SettingsProblem{Msg: "missing required field instance_class (such as db.t4g.micro)"})
	}
	if t.SubnetGroup == "" && !t.AllowDefaultNetwork {
		ps = append(ps, drills.SettingsProblem{Msg: "missing required field subnet_group (an isolated DB subnet group; or allow_default_network: true to restore into the default VPC)"})
	}
	for k := range t.Tags {
		if k == "ManagedBy" || strings.HasPrefix(k, "Drill") {
			ps = append(ps, drills.SettingsProblem{Key: "tags", Msg: fmt.Sprintf("tags: %q is drill's own tag", k)})
		}
	}
	return ps
}

func newSourceFromSpec(ctx context.Context, spec *drills.Spec) (drills.Source, error) {
	var s SourceSettings
	if err := spec.Source.Decode(&s); err != nil {
		return nil, err
	}
	return NewSource(ctx, SourceConfig{PointInTime: spec.Source.Type == PITRSourceType, Instance: s.Instance,
		Region: s.Region, SnapshotTypes: s.SnapshotTypes, RestoreTime: s.RestoreTime})
}

func newTargetFromSpec(ctx context.Context, spec *drills.Spec) (drills.Target, error) {
	var t TargetSettings
	if err := spec.Target.Decode(&t); err != nil {
		return nil, err
	}
	var src SourceSettings
	if spec.Source.Type == SnapshotSourceType || spec.Source.Type == PITRSourceType {
		if err := spec.Source.Decode(&src); err != nil {
			return nil, err
		}
	}
	return NewTarget(ctx, TargetConfig{Region: t.Region, InstanceClass: t.InstanceClass, SubnetGroup: t.SubnetGroup,
		AllowDefaultNetwork: t.AllowDefaultNetwork, SecurityGroups: t.SecurityGroups, Tags: t.Tags, Database: t.Database,
		CABundle: t.CABundle, PollInterval: t.PollInterval, SourceInstance: src.Instance})
}
