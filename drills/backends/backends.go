// Package backends links every backend into the program and builds the
// Source and Target of a drill from its spec through the registry (see
// drills.Register). Adding a backend is one package and one import line
// here.
package backends

import (
	"context"
	"fmt"

	"drill/drills"
	"drill/drills/config"

	// The backends: each registers its source and target types.
	_ "drill/drills/barmancloud"
	_ "drill/drills/local"
	_ "drill/drills/pgbackrest"
	_ "drill/drills/pgdump"
	_ "drill/drills/rds"
)

// LoadConfig reads and validates a config file with every backend known.
func LoadConfig(path string) (*drills.Config, error) { return config.Load(path) }

// StateURL reads only the state database's URL from a config file.
func StateURL(path string) (string, error) { return config.StateURL(path) }

// OnlyUnsetVariables reports whether a config's problems are all
// environment variables not set.
func OnlyUnsetVariables(err error) bool { return config.OnlyUnsetVariables(err) }

// For returns the Source and Target of spec. An error means the drill cannot
// be carried out on this machine (no PostgreSQL binaries, no such OS user, …).
func For(ctx context.Context, spec *drills.Spec) (drills.Source, drills.Target, error) {
	src, err := Source(ctx, spec)
	if err != nil {
		return nil, nil, err
	}
	tgt, err := targetFor(ctx, spec)
	if err != nil {
		return nil, nil, fmt.Errorf("drill %q: target: %w", spec.Name, err)
	}
	return src, tgt, nil
}

// Source returns the Source of spec.
func Source(ctx context.Context, spec *drills.Spec) (drills.Source, error) {
	be, ok := drills.Lookup(drills.KindSource, spec.Source.Type)
	if !ok || be.NewSource == nil {
		return nil, fmt.Errorf("drill %q: unknown source type %q", spec.Name, spec.Source.Type)
	}
	src, err := be.NewSource(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("drill %q: source: %w", spec.Name, err)
	}
	return src, nil
}

// Target returns the Target of a target spec.
func Target(t drills.TargetSpec) (drills.Target, error) {
	return targetFor(context.Background(), &drills.Spec{Target: t})
}

func targetFor(ctx context.Context, spec *drills.Spec) (drills.Target, error) {
	typ := spec.Target.Type
	if typ == "" {
		typ = drills.DefaultTargetType
	}
	be, ok := drills.Lookup(drills.KindTarget, typ)
	if !ok || be.NewTarget == nil {
		return nil, fmt.Errorf("unknown target type %q", typ)
	}
	return be.NewTarget(ctx, spec)
}

// Targets returns one Target per distinct target spec of the config, for
// sweeping: each can destroy its own instances and list unknown ones.
// Targets that cannot be built here are skipped with their error.
func Targets(cfg *drills.Config) (map[string][]drills.Target, []error) {
	out := map[string][]drills.Target{}
	seen := map[string]bool{}
	var errs []error
	specs := []drills.TargetSpec{{Type: drills.DefaultTargetType}} // the default dir, even with no drill using it
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
