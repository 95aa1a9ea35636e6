package local

import (
	"context"
	"fmt"
	"os"
	"os/user"

	"drill/drills"
)

// Settings are the keys of a local target in drill.yaml.
type Settings struct {
	// RunAs is the OS user of the cluster when drill runs as root.
	RunAs string `yaml:"run_as" json:"run_as,omitempty"`
	// Dir is where cluster directories are made.
	Dir string `yaml:"dir" json:"dir,omitempty"`
	// Database is the database restored into.
	Database string `yaml:"database" json:"database,omitempty"`
	// Jobs is pg_restore's -j.
	Jobs int `yaml:"jobs" json:"jobs,omitempty"`
}

func init() {
	drills.Register(drills.Backend{Kind: drills.KindTarget, Type: TargetType,
		Settings: func() any { return &Settings{} }, NewTarget: newFromSpec})
}

// Spec is the target spec of throwaway clusters made in dir.
func Spec(dir string) drills.TargetSpec {
	return drills.TargetSpec{Type: TargetType, Settings: Settings{Dir: dir}}
}

// Validate checks the settings.
// Validate checks the settings, and that the OS user and the directory
// they name exist on this host: a drill would fail on each run otherwise.
func (s Settings) Validate(*drills.Spec) []drills.SettingsProblem {
	var problems []drills.SettingsProblem
	if s.Jobs < 0 {
		problems = append(problems, drills.SettingsProblem{Key: "jobs", Msg: "jobs must be at least 1"})
	}
	if s.RunAs != "" {
		if _, err := user.Lookup(s.RunAs); err != nil {
			problems = append(problems, drills.SettingsProblem{Key: "run_as", Msg: fmt.Sprintf("no OS user %q on this host (make users creates %s)", s.RunAs, SandboxUser)})
		}
	}
	if s.Dir != "" {
		if fi, err := os.Stat(s.Dir); err != nil || !fi.IsDir() {
			problems = append(problems, drills.SettingsProblem{Key: "dir", Msg: fmt.Sprintf("%s is not a directory on this host", s.Dir)})
		}
	}
	return problems
}

func newFromSpec(_ context.Context, spec *drills.Spec) (drills.Target, error) {
	var s Settings
	if err := spec.Target.Decode(&s); err != nil {
		return nil, err
	}
	return NewTarget(TargetConfig{Dir: s.Dir, RunAs: s.RunAs, Database: s.Database, Jobs: s.Jobs})
}
