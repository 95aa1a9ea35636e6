// Package drills is the domain of a restore drill: a parsed drill (Spec), its
// run record (Run, Phase), the Source and Target interfaces that backends
// implement, the Runner that carries a drill out, and the Store that keeps
// the history in PostgreSQL.
package drills

import (
	"context"
	"drill/verify"
	"errors"
	"io"
	"time"
)

// ErrNoBackup is returned by Source.Latest when the source holds no usable backup.
var ErrNoBackup = errors.New("no backup found")

// ErrNotManaged is returned by Target.Destroy when asked to remove something
// that does not carry this tool's marks for the given run. Nothing is removed.
var ErrNotManaged = errors.New("refused: not created by drill for this run")

// Source finds backups of one system.
type Source interface {
	// Latest returns the newest backup. It returns an error wrapping
	// ErrNoBackup when there is none; any other error means the source could
	// not be read.
	Latest(ctx context.Context) (Backup, error)
}

// Backup is one restorable backup.
type Backup struct {
	// ID identifies the backup: a file path, an s3:// URL or a snapshot id.
	ID string `json:"id"`
	// CreatedAt is when the backup was taken: the RPO is measured from it.
	CreatedAt time.Time `json:"created_at"`
	// CreatedAtSource says where CreatedAt came from ("archive header",
	// "file mtime", "object last-modified", "snapshot create time").
	CreatedAtSource string `json:"created_at_source,omitempty"`
	// Format is the archive or snapshot format (custom, tar, directory, plain, plain-gzip, …).
	Format string `json:"format,omitempty"`
	// SizeBytes is the size of the backup when known.
	SizeBytes int64 `json:"size_bytes,omitempty"`
	// Database is the name of the database the backup was taken from, when known.
	Database string `json:"database,omitempty"`
	// Details are further facts for the record (snapshot ARN, engine,
	// version, encrypted, restore time). Never secrets.
	Details map[string]string `json:"details,omitempty"`
	// SHA256 is the digest of the backup as it was read for the restore
	// (see DigestPath); empty until then, and for snapshots.
	SHA256 string `json:"sha256,omitempty"`
	// Selection says how the backup was chosen among others.
	Selection *Selection `json:"selection,omitempty"`
	// RecoveredTo is, for a physical backup restored with its WAL, the
	// time of the last transaction the recovery replayed: the RPO is
	// measured from it (CreatedAt is the base backup's stop time).
	RecoveredTo *time.Time `json:"recovered_to,omitempty"`

	// Physical restores a physical backup (a base backup and archived
	// WAL): a target that can restore one calls it in place of
	// pg_restore. Nil for pg_dump archives and snapshots.
	Physical PhysicalBackup `json:"-"`

	// Fingerprint is what `drill dump` recorded of the database in the
	// snapshot it dumped, when the backup has one; the record keeps its
	// location and digest in Details.
	Fingerprint *verify.Fingerprint `json:"-"`

	// Fetch makes the backup available as a local path under dir (a download
	// for remote backups; the path itself for local ones). Nil for backups
	// that are not files, such as snapshots. progress, when not nil, is
	// called with bytes done so far and the total (or -1).
	Fetch func(ctx context.Context, dir string, progress func(done, total int64)) (string, error) `json:"-"`

	// Stream reads the backup from its start, as it downloads, without
	// keeping it on disk, for a target that restores from a stream. Nil
	// for backups that are not downloaded; a target that opens it and
	// then needs a file calls Fetch instead.
	Stream func(ctx context.Context, progress func(done, total int64)) (io.ReadCloser, error) `json:"-"`
}

// RPOFrom is the moment the restored data is current to: the recovery
// point of a physical backup, else when the backup was taken.
func (b Backup) RPOFrom() time.Time {
	if b.RecoveredTo != nil {
		return *b.RecoveredTo
	}
	return b.CreatedAt
}

// PhysicalBackup is a base backup and the archived WAL that brings it to
// a point in time, restored by the tool that made them (pgBackRest,
// barman-cloud). The repository is only ever read.
type PhysicalBackup interface {
	// MajorVersion is the PostgreSQL major version that took the backup:
	// the cluster runs that version's binaries.
	MajorVersion() int
	// Restore writes the base backup into dirs.Data, running the backup
	// tool through run (as the cluster's OS user).
	Restore(ctx context.Context, dirs RestoreDirs, run ToolRunner) error
	// RestoreCommand is the server's restore_command (with %f and %p)
	// for a cluster restored into dirs.
	RestoreCommand(dirs RestoreDirs) string
	// Env is what the backup tool needs in its environment besides PATH
	// and HOME (a cloud endpoint, credentials): the server has it while it
	// replays WAL, and is restarted without it before anything else
	// connects.
	Env() []string
	// TargetTime is the recovery target; zero replays all archived WAL.
	TargetTime() time.Time
	// LastWAL names the newest WAL segment in the archive ("" when not
	// known): a recovery to the end of the archive that stops before it
	// met a missing or unreadable segment.
	LastWAL(ctx context.Context) (string, error)
}

// RestoreDirs are the directories of a physical restore, all the cluster's
// OS user's: Data is empty, every tablespace goes under Tablespaces (never
// where it was on the backed-up host), Work is the tool's own (locks,
// spool) and its working directory.
type RestoreDirs struct {
	Data, Tablespaces, Work string
}

// ToolRunner runs a program as the cluster's OS user with env added to a
// clean environment, and returns what it printed.
type ToolRunner func(ctx context.Context, env []string, name string, args ...string) ([]byte, error)

// FormatPhysical is the format of a physical backup restored with WAL.
const FormatPhysical = "physical"

// Formats of pg_dump backups.
const (
	FormatCustom    = "custom"     // pg_dump -Fc
	FormatTar       = "tar"        // pg_dump -Ft
	FormatDirectory = "directory"  // pg_dump -Fd
	FormatPlain     = "plain"      // pg_dump -Fp (SQL)
	FormatPlainGzip = "plain-gzip" // pg_dump -Fp | gzip
)

// Reopener is a Source that can rebuild a Backup it returned before from
// its record — Fetch included — for a run resumed in another process.
type Reopener interface {
	Reopen(ctx context.Context, b Backup) (Backup, error)
}

// Selection says how a backup was chosen: the rule, and the newest
// candidates it was chosen from (the chosen one first), so that a record
// shows the newest backup was the one restored.
type Selection struct {
	Rule string `json:"rule"`
	// Considered is how many candidates there were; Candidates holds the
	// newest of them (at most MaxCandidates).
	Considered int         `json:"considered"`
	Candidates []Candidate `json:"candidates"`
}

// Candidate is one backup a source could have chosen.
type Candidate struct {
	Name string    `json:"name"`
	Time time.Time `json:"time"`
}

// MaxCandidates is how many candidates a Selection keeps.
const MaxCandidates = 10

// Select records how a backup was chosen among candidates, newest first
// (the caller's order).
func Select(rule string, newestFirst []Candidate) *Selection {
	s := &Selection{Rule: rule, Considered: len(newestFirst), Candidates: newestFirst[:min(len(newestFirst), MaxCandidates)]}
	for i := range s.Candidates {
		s.Candidates[i].Time = s.Candidates[i].Time.UTC().Truncate(time.Second)
	}
	return s
}
