// Package pgbackrest is the Source of physical backups made by pgBackRest:
// a base backup chosen by pgBackRest's own metadata (`pgbackrest info`),
// restored by `pgbackrest restore` into drill's throwaway cluster and
// brought to a point in time with `pgbackrest archive-get`. drill only
// reads the repository: no command it runs writes there, and the restored
// cluster never archives.
package pgbackrest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"drill/drills"
	"drill/drills/local"
	"drill/drills/physical"
)

// SourceType is the source type of this package in drill.yaml.
const SourceType = "pgbackrest"

// Settings are the keys of a pgbackrest source in drill.yaml.
type Settings struct {
	// Stanza is the pgBackRest stanza of the cluster.
	Stanza string `yaml:"stanza" json:"stanza"`
	// Config is pgbackrest.conf (default: pgBackRest's own default).
	Config string `yaml:"config" json:"config,omitempty"`
	// Set is a backup label; default: the newest that can reach TargetTime.
	Set string `yaml:"set" json:"set,omitempty"`
	// TargetTime is latest (all archived WAL) or an RFC 3339 time.
	TargetTime string `yaml:"target_time" json:"target_time,omitempty"`
}

func init() {
	drills.Register(drills.Backend{Kind: drills.KindSource, Type: SourceType,
		Settings: func() any { return &Settings{} }, NewSource: newFromSpec})
}

// Validate checks the settings and that the drill restores into a local target.
func (s Settings) Validate(spec *drills.Spec) []drills.SettingsProblem {
	var ps []drills.SettingsProblem
	if s.Stanza == "" {
		ps = append(ps, drills.SettingsProblem{Msg: "missing required field stanza (the pgBackRest stanza of the cluster)"})
	}
	ps = append(ps, physical.TargetTimeProblem(s.TargetTime)...)
	if spec.Target.Type != local.TargetType {
		ps = append(ps, drills.SettingsProblem{DrillKey: "target", Msg: "a pgbackrest source restores into a local target"})
	}
	return ps
}

// Describe says where the backups are.
func (s Settings) Describe() string {
	d := "stanza " + s.Stanza
	if s.Config != "" {
		d += " (" + s.Config + ")"
	}
	return d
}

// Missing says when pgbackrest is not installed.
func (s Settings) Missing() string { return physical.ToolMissing("pgbackrest", "pgbackrest") }

func newFromSpec(_ context.Context, spec *drills.Spec) (drills.Source, error) {
	var s Settings
	if err := spec.Source.Decode(&s); err != nil {
		return nil, err
	}
	if m := s.Missing(); m != "" {
		return nil, errors.New(m)
	}
	target, err := physical.ParseTargetTime(s.TargetTime)
	if err != nil {
		return nil, err
	}
	list, err := physical.ListAs(spec)
	if err != nil {
		return nil, err
	}
	return &Source{s: s, target: target, list: list}, nil
}

// Source lists a stanza's backups with pgbackrest info.
type Source struct {
	s      Settings
	target time.Time
	list   func(ctx context.Context, name string, args ...string) *exec.Cmd
}

// common are the options of every pgbackrest command drill runs: the
// stanza, the config, and no log file (drill writes nowhere but its own
// directories).
func (src *Source) common() []string {
	args := []string{"--stanza=" + src.s.Stanza, "--log-level-file=off"}
	if src.s.Config != "" {
		args = append(args, "--config="+src.s.Config)
	}
	return args
}

// info is what pgbackrest info --output=json says of one stanza.
type info struct {
	Name   string `json:"name"`
	Status struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"status"`
	DB []struct {
		ID      int    `json:"id"`
		Version string `json:"version"`
	} `json:"db"`
	Repo []struct {
		Key    int `json:"key"`
		Status struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"status"`
	} `json:"repo"`
	Archive []struct {
		Database struct {
			ID int `json:"id"`
		} `json:"database"`
		Max string `json:"max"`
	} `json:"archive"`
	Backup []struct {
		Label     string `json:"label"`
		Type      string `json:"type"`
		Error     *bool  `json:"error"`
		Timestamp struct {
			Start int64 `json:"start"`
			Stop  int64 `json:"stop"`
		} `json:"timestamp"`
		LSN struct {
			Start string `json:"start"`
			Stop  string `json:"stop"`
		} `json:"lsn"`
		Archive struct {
			Start string `json:"start"`
			Stop  string `json:"stop"`
		} `json:"archive"`
		Info struct {
			Size       int64 `json:"size"`
			Repository struct {
				Size int64 `json:"size"`
			} `json:"repository"`
		} `json:"info"`
		Database struct {
			ID int `json:"id"`
		} `json:"database"`
	} `json:"backup"`
}

func (src *Source) info(ctx context.Context) (*info, error) {
	cmd := src.list(ctx, "pgbackrest", append(src.common(), "--output=json", "--log-level-console=warn", "--log-level-stderr=warn", "info")...)
	cmd.Env = append(cmd.Env, backrestEnv()...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pgbackrest info: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var stanzas []info
	if err := json.Unmarshal(out, &stanzas); err != nil {
		return nil, fmt.Errorf("pgbackrest info: unreadable output: %w", err)
	}
	for i := range stanzas {
		if stanzas[i].Name == src.s.Stanza {
			return &stanzas[i], nil
		}
	}
	return nil, fmt.Errorf("pgbackrest info does not list stanza %q", src.s.Stanza)
}

// Latest chooses the base backup to restore by pgBackRest's own metadata.
func (src *Source) Latest(ctx context.Context) (drills.Backup, error) {
	in, err := src.info(ctx)
	if err != nil {
		return drills.Backup{}, err
	}
	what := "stanza " + src.s.Stanza
	switch in.Status.Code {
	case 0:
	case 2: // no valid backups
		return drills.Backup{}, fmt.Errorf("%w: %s has no backup (pgbackrest: %s)", drills.ErrNoBackup, what, in.Status.Message)
	default:
		msg := in.Status.Message
		for _, r := range in.Repo {
			if r.Status.Code != 0 && r.Status.Message != "" {
				msg += fmt.Sprintf("; repo%d: %s", r.Key, r.Status.Message)
			}
		}
		hint := "check source.stanza and source.config"
		if strings.Contains(msg, "ermission denied") {
			hint = "the OS user drill's clusters run as (target.run_as) must be able to read the repository: docs/physical.md"
		}
		return drills.Backup{}, fmt.Errorf("%s: pgbackrest says %q (%s)", what, msg, hint)
	}
	versions := map[int]int{}
	for _, db := range in.DB {
		major, _, _ := strings.Cut(db.Version, ".")
		versions[db.ID], _ = strconv.Atoi(major)
	}
	lastWAL := map[int]string{}
	for _, a := range in.Archive {
		if a.Max > lastWAL[a.Database.ID] {
			lastWAL[a.Database.ID] = a.Max
		}
	}
	var bases []physical.Base
	dbOf := map[string]int{}
	for _, b := range in.Backup {
		base := physical.Base{Label: b.Label, Start: time.Unix(b.Timestamp.Start, 0), Stop: time.Unix(b.Timestamp.Stop, 0),
			StartLSN: b.LSN.Start, StopLSN: b.LSN.Stop, StartWAL: b.Archive.Start, StopWAL: b.Archive.Stop,
			Version: versions[b.Database.ID], Size: b.Info.Repository.Size, DatabaseSize: b.Info.Size}
		switch {
		case b.Error != nil && *b.Error:
			base.Problem = "pgBackRest found errors in it"
		case b.Archive.Start == "":
			base.Problem = "no archived WAL"
		}
		dbOf[b.Label] = b.Database.ID
		bases = append(bases, base)
	}
	chosen, sel, err := physical.Choose(what, bases, src.s.Set, src.target)
	if err != nil {
		return drills.Backup{}, err
	}
	b := chosen.Record(src.s.Stanza+"/"+chosen.Label, "pgBackRest", sel, map[string]string{"stanza": src.s.Stanza}, src.target)
	last := lastWAL[dbOf[chosen.Label]]
	b.Physical = &physical.Backup{Version: chosen.Version, Target: src.target, Environ: backrestEnv(),
		RestoreFunc: func(ctx context.Context, dirs drills.RestoreDirs, run drills.ToolRunner) error {
			args := append(src.common(), "--set="+chosen.Label, "--pg1-path="+dirs.Data, "--type=none",
				"--tablespace-map-all="+dirs.Tablespaces, "--lock-path="+dirs.Work, "--spool-path="+dirs.Work,
				"--process-max="+strconv.Itoa(max(runtime.NumCPU(), 1)), "--log-level-console=info", "restore")
			_, err := run(ctx, backrestEnv(), "pgbackrest", args...)
			return err
		},
		Command: func(dirs drills.RestoreDirs) string {
			var args []string
			for _, a := range append(src.common(), "--pg1-path="+dirs.Data, "--lock-path="+dirs.Work, "--log-level-console=warn", "--log-level-stderr=warn") {
				args = append(args, physical.ShellQuote(a))
			}
			return "pgbackrest " + strings.Join(args, " ") + ` archive-get %f "%p"`
		},
		LastWALFunc: func(context.Context) (string, error) { return last, nil },
	}
	return b, nil
}

// backrestEnv is pgBackRest's own settings from the environment
// (PGBACKREST_*: a repository's credentials, say), for the tool alone.
func backrestEnv() []string { return physical.Environ(isBackrestVariable) }

func isBackrestVariable(name string) bool { return strings.HasPrefix(name, "PGBACKREST_") }
