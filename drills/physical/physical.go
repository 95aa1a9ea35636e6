// Package physical holds what the physical backup sources (pgBackRest,
// barman-cloud) share: the recovery target, the choice of a base backup
// by the tool's own metadata, and the drills.PhysicalBackup they hand the
// local target.
package physical

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"drill/drills"
	"drill/drills/local"
)

// Latest is the target_time that replays all archived WAL.
const Latest = "latest"

// ParseTargetTime reads target_time: "" or latest give the zero time.
func ParseTargetTime(s string) (time.Time, error) {
	if s == "" || s == Latest {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("target_time %q is neither latest nor an RFC 3339 time (like 2026-11-01T03:00:00Z)", s)
	}
	return t, nil
}

// TargetTimeProblem checks a target_time setting.
func TargetTimeProblem(s string) []drills.SettingsProblem {
	if _, err := ParseTargetTime(s); err != nil {
		return []drills.SettingsProblem{{Key: "target_time", Msg: err.Error()}}
	}
	return nil
}

// ToolMissing says how to install program when it is not on $PATH, or "".
func ToolMissing(program, debianPackage string) string {
	if _, err := exec.LookPath(program); err == nil {
		return ""
	}
	return fmt.Sprintf("%s is not installed on this host (Debian/Ubuntu: apt-get install %s)", program, debianPackage)
}

// ListAs returns how to run a listing tool: as the drill's local target's
// run_as user (as the restore does), with a clean environment — add the
// tool's own variables (Environ) to the command's. A backup's metadata is
// untrusted input: the tool that parses it runs as a user that owns
// nothing else, and never sees drill's own secrets.
func ListAs(spec *drills.Spec) (func(ctx context.Context, name string, args ...string) *exec.Cmd, error) {
	var ls local.Settings
	if spec.Target.Type == local.TargetType {
		if err := spec.Target.Decode(&ls); err != nil {
			return nil, err
		}
	}
	runAs, _, err := local.LookupSandbox(ls.RunAs)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, name string, args ...string) *exec.Cmd {
		return runAs.Command(ctx, "/", name, args...)
	}, nil
}

// Environ is the variables of drill's environment whose names keep
// keeps: what a backup tool may see of it.
func Environ(keep func(name string) bool) []string {
	var env []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); keep(name) {
			env = append(env, kv)
		}
	}
	return env
}

// Base is one base backup as its tool lists it.
type Base struct {
	Label             string
	Start, Stop       time.Time
	StartLSN, StopLSN string
	StartWAL, StopWAL string
	Version           int   // PostgreSQL major version
	Size              int64 // bytes in the repository
	DatabaseSize      int64 // bytes restored, when known
	Problem           string
}

// Choose picks the base backup to restore: the one labelled set when set
// is given, else the newest (by the tool's stop time) that finished
// before target (zero: the newest). what names the repository in errors.
func Choose(what string, bases []Base, set string, target time.Time) (Base, *drills.Selection, error) {
	var usable []Base
	for _, b := range bases {
		if b.Problem == "" {
			usable = append(usable, b)
		}
	}
	sort.SliceStable(usable, func(i, j int) bool { return usable[i].Stop.After(usable[j].Stop) })
	if len(usable) == 0 {
		why := ""
		if len(bases) > 0 {
			why = fmt.Sprintf(" (%d listed, none usable: %s)", len(bases), bases[0].Problem)
		}
		return Base{}, nil, fmt.Errorf("%w: %s holds no usable base backup%s", drills.ErrNoBackup, what, why)
	}
	var cands []drills.Candidate
	for _, b := range usable {
		cands = append(cands, drills.Candidate{Name: b.Label, Time: b.Stop})
	}
	if set != "" {
		for i, b := range usable {
			if b.Label != set {
				continue
			}
			if !target.IsZero() && b.Stop.After(target) {
				return Base{}, nil, fmt.Errorf("%w: backup %s finished at %s, after target_time %s: it cannot be recovered to that time",
					drills.ErrNoBackup, set, b.Stop.UTC().Format(time.RFC3339), target.UTC().Format(time.RFC3339))
			}
			cands[0], cands[i] = cands[i], cands[0]
			return b, drills.Select("the backup named by source.set", cands), nil
		}
		return Base{}, nil, fmt.Errorf("%w: %s has no usable backup labelled %s (the newest: %s)", drills.ErrNoBackup, what, set, labels(usable, 5))
	}
	if target.IsZero() {
		return usable[0], drills.Select("the newest base backup by the tool's stop time, recovered to the end of the archived WAL", cands), nil
	}
	for i, b := range usable {
		if !b.Stop.After(target) {
			cands[0], cands[i] = cands[i], cands[0]
			return b, drills.Select("the newest base backup by the tool's stop time that finished before target_time "+target.UTC().Format(time.RFC3339), cands), nil
		}
	}
	oldest := usable[len(usable)-1]
	return Base{}, nil, fmt.Errorf("%w: no backup in %s finished before target_time %s; the oldest finished at %s",
		drills.ErrNoBackup, what, target.UTC().Format(time.RFC3339), oldest.Stop.UTC().Format(time.RFC3339))
}

func labels(bases []Base, n int) string {
	var out []string
	for _, b := range bases[:min(n, len(bases))] {
		out = append(out, b.Label)
	}
	return strings.Join(out, ", ")
}

// Record is the drills.Backup of a chosen base backup: its stop time is
// when it was taken (the RPO runs from the recovery point, once known);
// target is the recovery target (zero: the end of the archived WAL).
func (b Base) Record(id, tool string, sel *drills.Selection, details map[string]string, target time.Time) drills.Backup {
	d := map[string]string{
		"target_time": Latest,
		"label":       b.Label,
		"start_time":  b.Start.UTC().Format(time.RFC3339),
		"stop_time":   b.Stop.UTC().Format(time.RFC3339),
		"pg_version":  fmt.Sprint(b.Version),
	}
	for k, v := range map[string]string{"start_lsn": b.StartLSN, "stop_lsn": b.StopLSN, "start_wal": b.StartWAL, "stop_wal": b.StopWAL} {
		if v != "" {
			d[k] = v
		}
	}
	if b.DatabaseSize > 0 {
		d["database_size_bytes"] = fmt.Sprint(b.DatabaseSize)
	}
	if !target.IsZero() {
		d["target_time"] = target.UTC().Format(time.RFC3339Nano)
	}
	for k, v := range details {
		d[k] = v
	}
	return drills.Backup{ID: id, CreatedAt: b.Stop, CreatedAtSource: tool + " backup stop time", Format: drills.FormatPhysical,
		SizeBytes: b.Size, Details: d, Selection: sel}
}

// Backup is a drills.PhysicalBackup made of what its tool supplies.
type Backup struct {
	Version int
	Target  time.Time
	// Environ is the tool's environment (see drills.PhysicalBackup.Env).
	Environ []string
	// RestoreFunc writes the base backup; Command is the restore_command.
	RestoreFunc func(ctx context.Context, dirs drills.RestoreDirs, run drills.ToolRunner) error
	Command     func(dirs drills.RestoreDirs) string
	// LastWALFunc names the newest archived segment (nil: not known).
	LastWALFunc func(ctx context.Context) (string, error)
}

var _ drills.PhysicalBackup = (*Backup)(nil)

func (b *Backup) MajorVersion() int { return b.Version }
func (b *Backup) Restore(ctx context.Context, dirs drills.RestoreDirs, run drills.ToolRunner) error {
	return b.RestoreFunc(ctx, dirs, run)
}
func (b *Backup) RestoreCommand(dirs drills.RestoreDirs) string { return b.Command(dirs) }
func (b *Backup) Env() []string                                 { return b.Environ }
func (b *Backup) TargetTime() time.Time                         { return b.Target }
func (b *Backup) LastWAL(ctx context.Context) (string, error) {
	if b.LastWALFunc == nil {
		return "", nil
	}
	return b.LastWALFunc(ctx)
}

// ShellQuote quotes s for the shell that runs restore_command.
func ShellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// IsSegment tells whether name is a WAL segment file name (24 hex digits).
func IsSegment(name string) bool {
	if len(name) != 24 {
		return false
	}
	for _, r := range name {
		if !strings.ContainsRune("0123456789ABCDEF", r) {
			return false
		}
	}
	return true
}
