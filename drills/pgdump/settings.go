package pgdump

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"drill/drills"
	"drill/drills/local"
)

// Settings are the keys of a pgdump source in drill.yaml.
type Settings struct {
	// Location is a file, a directory or s3://bucket/prefix/.
	Location string `yaml:"location" json:"location,omitempty"`
	// Pattern is a glob the base name of a backup must match.
	Pattern string `yaml:"pattern" json:"pattern,omitempty"`
	// Region and Endpoint override the AWS environment for S3.
	Region   string `yaml:"region" json:"region,omitempty"`
	Endpoint string `yaml:"endpoint" json:"endpoint,omitempty"`
}

func init() {
	drills.Register(drills.Backend{Kind: drills.KindSource, Type: SourceType,
		Settings: func() any { return &Settings{} }, NewSource: newFromSpec})
}

// Spec is the source spec of pgdump backups at location.
func Spec(location string) drills.SourceSpec {
	return drills.SourceSpec{Type: SourceType, Settings: Settings{Location: location}}
}

// Validate checks the settings and that the drill restores into a local target.
func (s Settings) Validate(spec *drills.Spec) []drills.SettingsProblem {
	var ps []drills.SettingsProblem
	if s.Location == "" {
		ps = append(ps, drills.SettingsProblem{Msg: "missing required field location (a file, a directory or s3://bucket/prefix/)"})
	} else if kind := drills.SpecialFile(s.Location); kind != "" {
		ps = append(ps, drills.SettingsProblem{Key: "location", Msg: fmt.Sprintf("location %s is %s: drill reads backups from regular files and directories only", s.Location, kind)})
	}
	if spec.Target.Type != local.TargetType {
		ps = append(ps, drills.SettingsProblem{DrillKey: "target", Msg: "a pgdump source restores into a local target"})
	}
	return ps
}

// Warnings says when a local location does not exist (yet): it may be
// mounted later, so it is not an error.
func (s Settings) Warnings() []string {
	if s.Location == "" || strings.HasPrefix(s.Location, "s3://") {
		return nil
	}
	if _, err := os.Stat(s.Location); errors.Is(err, fs.ErrNotExist) {
		return []string{fmt.Sprintf("location %s does not exist (yet): until it does, a run finds no backup (no_backup)", s.Location)}
	} else if err != nil {
		return []string{fmt.Sprintf("location %s: %v", s.Location, err)}
	}
	return nil
}

// Describe says where the backups are.
func (s Settings) Describe() string { return s.Location }

func newFromSpec(ctx context.Context, spec *drills.Spec) (drills.Source, error) {
	var s Settings
	if err := spec.Source.Decode(&s); err != nil {
		return nil, err
	}
	var pgRestore string
	if bin, err := local.FindBinaries(); err == nil {
		pgRestore = bin.Path("pg_restore")
	}
	return NewSource(ctx, SourceConfig{Location: s.Location, Pattern: s.Pattern, Region: s.Region, Endpoint: s.Endpoint, PGRestore: pgRestore})
}
