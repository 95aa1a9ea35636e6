// Package backends builds the Source and Target of a drill from its spec:
// the one place that knows every backend.
package backends

import (
	"context"
	"fmt"

	"drill/drills"
	"drill/drills/local"
	"drill/drills/pgdump"
	"drill/drills/rds"
)

// For returns the Source and Target of spec. An error means the drill cannot
// be carried out on this machine (no PostgreSQL binaries, no such OS user, …).
func For(ctx context.Context, spec *drills.Spec) (drills.Source, drills.Target, error) {
	src, err := Source(ctx, spec)
	if err != nil {
		return nil, nil, err
	}
	tgt, err := targetFor(ctx, spec.Target, spec.Source.Instance)
	if err != nil {
		return nil, nil, fmt.Errorf("drill %q: target: %w", spec.Name, err)
	}
	return src, tgt, nil
}

// Source returns the Source of spec.
func Source(ctx context.Context, spec *drills.Spec) (drills.Source, error) {
	switch spec.Source.Type {
	case drills.SourceRDSSnapshot, drills.SourceRDSPITR:
		src, err := rds.NewSource(ctx, rds.SourceConfig{PointInTime: spec.Source.Type == drills.SourceRDSPITR, Instance: spec.Source.Instance,
			Region: spec.Source.Region, SnapshotTypes: spec.Source.SnapshotTypes, RestoreTime: spec.Source.RestoreTime})
		if err != nil {
			return nil, fmt.Errorf("drill %q: source: %w", spec.Name, err)
		}
		return src, nil
	case drills.SourcePgdump:
		var pgRestore string
		if bin, err := local.FindBinaries(); err == nil {
			pgRestore = bin.Path("pg_restore")
		}
		src, err := pgdump.NewSource(ctx, pgdump.SourceConfig{Location: spec.Source.Location, Pattern: spec.Source.Pattern,
			Region: spec.Source.Region, Endpoint: spec.Source.Endpoint, PGRestore: pgRestore})
		if err != nil {
			return nil, fmt.Errorf("drill %q: source: %w", spec.Name, err)
		}
		return src, nil
	}
	return nil, fmt.Errorf("drill %q: unknown source type %q", spec.Name, spec.Source.Type)
}

// Target returns the Target of a target spec.
func Target(t drills.TargetSpec) (drills.Target, error) {
	return targetFor(context.Background(), t, "")
}

func targetFor(ctx context.Context, t drills.TargetSpec, sourceInstance string) (drills.Target, error) {
	switch t.Type {
	case drills.TargetLocal, "":
		return local.NewTarget(local.TargetConfig{Dir: t.Dir, RunAs: t.RunAs, Database: t.Database, Jobs: t.Jobs})
	case drills.TargetRDS:
		return rds.NewTarget(ctx, rds.TargetConfig{Region: t.Region, InstanceClass: t.InstanceClass, SubnetGroup: t.SubnetGroup,
			AllowDefaultNetwork: t.AllowDefaultNetwork, SecurityGroups: t.SecurityGroups, Tags: t.Tags, Database: t.Database,
			CABundle: t.CABundle, PollInterval: t.PollInterval, SourceInstance: sourceInstance})
	}
	return nil, fmt.Errorf("unknown target type %q", t.Type)
}

// Targets returns one Target per distinct target spec of the config, for
// sweeping: each can destroy its own instances and list unknown ones.
// Targets that cannot be built here are skipped with their error.
func Targets(cfg *drills.Config) (map[string][]drills.Target, []error) {
	out := map[string][]drills.Target{}
	seen := map[string]bool{}
	var errs []error
	specs := []drills.TargetSpec{{Type: drills.TargetLocal}} // the default dir, even with no drill using it
	for _, d := range cfg.Drills {
		specs = append(specs, d.Target)
	}
	for _, ts := range specs {
		if seen[ts.Key()] {
			continue
		}
		seen[ts.Key()] = true
		t, err := Target(ts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[ts.Type] = append(out[ts.Type], t)
	}
	return out, errs
}
