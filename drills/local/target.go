// Package local is the Target that restores into a throwaway PostgreSQL
// cluster on this host: initdb into a new directory, a free port, a private
// socket, settings for a fast restore; stopped and removed afterwards. It
// also runs the embedded state database.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"drill/drills"

	"github.com/jackc/pgx/v5"
)

// TargetType is the target type of this package in drill.yaml.
const TargetType = "local"

// markerFile marks a directory as made by drill for one run. Destroy removes
// nothing whose marker does not name the run.
const markerFile = "drill-instance.json"

var _ drills.Target = (*Target)(nil)

// TargetConfig configures local targets.
type TargetConfig struct {
	// Dir is where cluster directories are made (default: the system temp dir).
	Dir string
	// RunAs is the OS user the cluster runs as when drill runs as root
	// (default postgres).
	RunAs string
	// Database is the database restored into (default: the backup's own
	// database name, else "restored").
	Database string
	// Jobs is pg_restore's -j (default: number of CPUs).
	Jobs int
}

// Target restores into throwaway clusters.
type Target struct {
	cfg   TargetConfig
	bin   Binaries
	runAs RunAs
}

// NewTarget checks that PostgreSQL binaries and the run_as user exist.
func NewTarget(cfg TargetConfig) (*Target, error) {
	bin, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	runAs, err := LookupRunAs(cfg.RunAs)
	if err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		cfg.Dir = os.TempDir()
	}
	if cfg.Jobs <= 0 {
		cfg.Jobs = numCPU()
	}
	return &Target{cfg: cfg, bin: bin, runAs: runAs}, nil
}

type marker struct {
	ManagedBy string    `json:"managed_by"`
	Drill     string    `json:"drill"`
	RunID     int64     `json:"run_id"`
	StoreID   string    `json:"store_id"`
	CreatedAt time.Time `json:"created_at"`
}

// Plan names the cluster directory: drill-<drill>-<run>-<random> under Dir.
func (t *Target) Plan(run drills.RunRef) (drills.Instance, error) {
	name := fmt.Sprintf("drill-%s-%d-%s", run.Drill, run.ID, RandomPassword()[:6])
	dir, err := filepath.Abs(filepath.Join(t.cfg.Dir, name))
	if err != nil {
		return drills.Instance{}, err
	}
	return drills.Instance{Type: TargetType, ID: dir, RunID: run.ID, Drill: run.Drill, StoreID: run.StoreID, Details: map[string]string{}}, nil
}

func (t *Target) cluster(in drills.Instance) *Cluster {
	port, _ := strconv.Atoi(in.Details["port"])
	return &Cluster{Dir: in.ID, Bin: t.bin, RunAs: t.runAs, Port: port, ListenTCP: true,
		Settings: ThrowawaySettings()}
}

// Provision makes the directory (with its marker), runs initdb and starts
// the server on a free port.
func (t *Target) Provision(ctx context.Context, in *drills.Instance, b drills.Backup, progress drills.Progress) error {
	if err := os.Mkdir(in.ID, 0o700); err != nil {
		return fmt.Errorf("create cluster directory: %w", err)
	}
	m, _ := json.Marshal(marker{ManagedBy: "drill", Drill: in.Drill, RunID: in.RunID, StoreID: in.StoreID, CreatedAt: time.Now().UTC()})
	if err := os.WriteFile(filepath.Join(in.ID, markerFile), m, 0o644); err != nil {
		return err
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	in.Details["port"] = strconv.Itoa(port)
	c := t.cluster(*in)
	// TCP needs a password nobody knows: restores and checks use the private socket.
	c.Password = RandomPassword()
	progress.Say("initdb " + c.DataDir())
	if err := c.Init(ctx); err != nil {
		return err
	}
	in.Details["postgres_version"] = t.bin.version()
	// Another process may take the port between FreePort and the start: try a few.
	for attempt := 1; ; attempt++ {
		progress.Say(fmt.Sprintf("starting PostgreSQL on 127.0.0.1:%d", c.Port))
		err = c.Start(ctx)
		if err == nil || attempt == 3 || ctx.Err() != nil || !strings.Contains(err.Error(), "could not bind") {
			return err
		}
		if port, err = FreePort(); err != nil {
			return err
		}
		in.Details["port"] = strconv.Itoa(port)
		if err := c.SetPort(port); err != nil {
			return err
		}
	}
}

// Restore creates the database and loads the backup with pg_restore (or psql
// for plain SQL), then runs ANALYZE.
func (t *Target) Restore(ctx context.Context, in *drills.Instance, b drills.Backup, progress drills.Progress) error {
	if b.Fetch == nil {
		return fmt.Errorf("backup %s is not a pg_dump archive; the local target restores pg_dump backups only", b.ID)
	}
	c := t.cluster(*in)
	spool := filepath.Join(in.ID, "backup")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return err
	}
	path, err := b.Fetch(ctx, spool, func(done, total int64) { progress.Say(fetchProgress(done, total)) })
	if err != nil {
		return fmt.Errorf("fetch %s: %w", b.ID, err)
	}
	db := t.cfg.Database
	if db == "" {
		db = b.Database
	}
	if db == "" {
		db = "restored"
	}
	in.Details["database"] = db
	if err := t.createDatabase(ctx, c, db); err != nil {
		return err
	}
	r := restoreCmd{bin: t.bin, dsn: c.SocketDSN(db), jobs: t.cfg.Jobs, progress: progress}
	if err := r.run(ctx, b.Format, path); err != nil {
		return err
	}
	progress.Say("ANALYZE")
	if err := analyze(ctx, c.SocketDSN(db)); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	_ = os.RemoveAll(spool) // the restored data is all that is needed now
	in.DSN = c.SocketDSN(db)
	return nil
}

func (t *Target) createDatabase(ctx context.Context, c *Cluster, db string) error {
	conn, err := connect(ctx, c.SocketDSN("postgres"), time.Minute)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if db == "postgres" {
		return nil
	}
	if _, err := conn.Exec(ctx, "create database "+pgx.Identifier{db}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", db, err)
	}
	return nil
}

// analyze runs ANALYZE with a statement timeout of whatever time the
// drill has left (at most a day).
func analyze(ctx context.Context, dsn string) error {
	timeout := 24 * time.Hour
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	conn, err := connect(ctx, dsn, timeout)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "analyze")
	return err
}

// connect opens a connection with application_name and statement_timeout set.
func connect(ctx context.Context, dsn string, statementTimeout time.Duration) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["application_name"] = "drill"
	cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(max(statementTimeout.Milliseconds(), 1), 10)
	return pgx.ConnectConfig(ctx, cfg)
}

// Destroy stops the cluster and removes its directory, after checking the
// directory's marker names in.RunID.
func (t *Target) Destroy(ctx context.Context, in drills.Instance) error {
	if in.Type != TargetType {
		return fmt.Errorf("%w: instance type %q is not %q", drills.ErrNotManaged, in.Type, TargetType)
	}
	m, err := readMarker(in.ID)
	if errors.Is(err, fs.ErrNotExist) {
		if _, statErr := os.Stat(in.ID); errors.Is(statErr, fs.ErrNotExist) {
			return nil // never created, or already gone
		}
		if empty(in.ID) {
			return os.Remove(in.ID) // made by Provision, which failed before writing the marker
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %s has no readable %s: %v", drills.ErrNotManaged, in.ID, markerFile, err)
	}
	if m.ManagedBy != "drill" || m.RunID != in.RunID || m.Drill != in.Drill {
		return fmt.Errorf("%w: %s belongs to drill %q run %d", drills.ErrNotManaged, in.ID, m.Drill, m.RunID)
	}
	c := t.cluster(in)
	if err := c.Stop(ctx, "immediate"); err != nil {
		c.killStray()
		if err := c.waitGone(ctx); err != nil {
			return fmt.Errorf("destroy %s: %w", in.ID, err)
		}
	}
	if err := os.RemoveAll(in.ID); err != nil {
		return fmt.Errorf("destroy %s: %w", in.ID, err)
	}
	return nil
}

// ConnectHint tells how to reach a kept cluster over its private socket.
func (t *Target) ConnectHint(in drills.Instance) string {
	c := t.cluster(in)
	db := in.Details["database"]
	if db == "" {
		db = "postgres"
	}
	who := ""
	if t.runAs.set {
		who = fmt.Sprintf(" (as root or %s)", t.runAs.Name)
	}
	return fmt.Sprintf("psql %q%s\nstop and remove it afterwards: %s stop -D %s -m immediate && rm -rf %s",
		c.SocketDSN(db), who, t.bin.Path("pg_ctl"), c.DataDir(), in.ID)
}

func readMarker(dir string) (marker, error) {
	var m marker
	b, err := os.ReadFile(filepath.Join(dir, markerFile))
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

func empty(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) == 0
}

func fetchProgress(done, total int64) string {
	if total > 0 {
		return fmt.Sprintf("downloaded %s of %s (%d%%)", humanBytes(done), humanBytes(total), done*100/total)
	}
	return "downloaded " + humanBytes(done)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

var _ drills.Sweepable = (*Target)(nil)

// Managed lists the cluster directories under Dir that carry a marker.
// Directories without one are never listed, whatever their name.
func (t *Target) Managed(ctx context.Context) ([]drills.Instance, error) {
	entries, err := os.ReadDir(t.cfg.Dir)
	if err != nil {
		return nil, err
	}
	var out []drills.Instance
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "drill-") {
			continue
		}
		dir, err := filepath.Abs(filepath.Join(t.cfg.Dir, e.Name()))
		if err != nil {
			continue
		}
		m, err := readMarker(dir)
		if err != nil || m.ManagedBy != "drill" {
			continue
		}
		out = append(out, drills.Instance{Type: TargetType, ID: dir, RunID: m.RunID, Drill: m.Drill, StoreID: m.StoreID, Details: map[string]string{}})
	}
	return out, nil
}
