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
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"drill/drills"
	"drill/verify"

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
	// RunAs is the OS user the cluster and the restore programs run as
	// when drill runs as root (default drill-sandbox, else postgres with a
	// warning).
	RunAs string
	// Database is the database restored into (default: the backup's own
	// database name, else "restored").
	Database string
	// Jobs is pg_restore's -j. Zero chooses per backup (see loadPlan):
	// one transaction when one table holds nearly all the data, else one
	// job per CPU.
	Jobs int
	// TemplateDir keeps the template clusters copied in place of initdb
	// (default: templates under DefaultHome; "-": initdb every time).
	TemplateDir string
}

// Target restores into throwaway clusters.
type Target struct {
	cfg     TargetConfig
	bin     Binaries
	runAs   RunAs
	warning string // said at each Provision: why runAs is not SandboxUser
	spares  sync.WaitGroup
}

// The roles of a throwaway cluster besides its superuser, which only sets
// the cluster up. Neither can reach the host: no superuser, no
// pg_execute_server_program, pg_read_server_files or pg_write_server_files,
// no CREATEROLE. Both bypass row-level security, so restores and checks see
// every row.
const (
	// RestoreRole owns the restored database and runs the restore.
	RestoreRole = "drill_restore"
	// CheckRole runs the checks: it reads everything (pg_read_all_data).
	CheckRole = "drill_check"
)

// NewTarget checks that PostgreSQL binaries and the run_as user exist.
func NewTarget(cfg TargetConfig) (*Target, error) {
	bin, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	runAs, warning, err := LookupSandbox(cfg.RunAs)
	if err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		cfg.Dir = os.TempDir()
	}
	if cfg.TemplateDir == "" {
		cfg.TemplateDir = filepath.Join(DefaultHome(), "templates")
	}
	return &Target{cfg: cfg, bin: bin, runAs: runAs, warning: warning}, nil
}

// Warning says why clusters run as an OS user that may own other things on
// this host, or is empty.
func (t *Target) Warning() string { return t.warning }

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

// Cluster is the cluster of an instance this target made.
func (t *Target) Cluster(in drills.Instance) *Cluster {
	port, _ := strconv.Atoi(in.Details["port"])
	bin := t.bin
	if dir := in.Details[binDetail]; dir != "" {
		bin = Binaries{Dir: dir} // a physical backup's own major version
	}
	return &Cluster{Dir: in.ID, Bin: bin, RunAs: t.runAs, Port: port, ListenTCP: true,
		Settings: ThrowawaySettings(), Superuser: in.Details[superuserDetail]}
}

// Provision makes the directory (with its marker), runs initdb and starts
// the server on a free port.
func (t *Target) Provision(ctx context.Context, in *drills.Instance, b drills.Backup, progress drills.Progress) error {
	if t.warning != "" {
		progress.Say("warning: " + t.warning)
	}
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
	if b.Physical != nil {
		return t.provisionPhysical(in, b.Physical, progress)
	}
	c := t.Cluster(*in)
	// TCP needs a password nobody knows: restores and checks use the private socket.
	c.Password = RandomPassword()
	fromTemplate := t.cfg.TemplateDir != "-"
	if fromTemplate {
		progress.Say("data directory from the template cluster: " + c.DataDir())
		if err := c.InitFromTemplate(ctx, t.cfg.TemplateDir); err != nil {
			if ctx.Err() != nil {
				return err
			}
			progress.Say("warning: " + err.Error() + "; running initdb instead")
			fromTemplate = false
			if err := resetClusterDir(in.ID); err != nil {
				return err
			}
		}
	}
	if !fromTemplate {
		progress.Say("initdb " + c.DataDir())
		if err := c.Init(ctx); err != nil {
			return err
		}
	}
	in.Details["postgres_version"] = t.bin.version()
	// Another process may take the port between FreePort and the start: try a few.
	for attempt := 1; ; attempt++ {
		progress.Say(fmt.Sprintf("starting PostgreSQL on 127.0.0.1:%d", c.Port))
		err = c.StartAttached(ctx)
		if err == nil {
			if err := createRoles(ctx, c, fromTemplate); err != nil { // a copy of the template has no password yet
				return err
			}
			if fromTemplate {
				t.makeSpare(c)
			}
			return nil
		}
		if attempt == 3 || ctx.Err() != nil || !strings.Contains(err.Error(), "could not bind") {
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
	if b.Physical != nil {
		return t.restorePhysical(ctx, in, b.Physical, progress)
	}
	if b.Fetch == nil {
		return fmt.Errorf("backup %s is not a pg_dump archive; the local target restores pg_dump backups only", b.ID)
	}
	c := t.Cluster(*in)
	// The spool is drill's own, in drill's own directory: readable by the
	// cluster's user, not writable.
	spool := filepath.Join(in.ID, "backup")
	if err := os.Mkdir(spool, 0o755); err != nil {
		return err
	}
	report := func(done, total int64) { progress.Say(fetchProgress(done, total)) }
	stream, facts, err := t.openRestoreStream(ctx, b, spool, report, progress)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", b.ID, err)
	}
	var path string
	if stream != nil {
		defer stream.Close()
		path = stream.head
	} else if path, err = b.Fetch(ctx, spool, report); err != nil {
		return fmt.Errorf("fetch %s: %w", b.ID, err)
	}
	plain := b.Format == drills.FormatPlain || b.Format == drills.FormatPlainGzip
	if plain && facts == nil {
		// drill reads a plain dump and hands it to psql itself.
		f, err := readPlainFacts(b.Format, path)
		if err != nil {
			return err
		}
		facts = &f
	} else if !plain {
		if path, err = t.stage(ctx, spool, path, progress); err != nil {
			return err
		}
	}
	db, err := t.databaseName(b, facts)
	if err != nil {
		return err
	}
	in.Details["database"] = db
	if err := t.createDatabase(ctx, c, db); err != nil {
		return err
	}
	r := restoreCmd{bin: t.bin, runAs: t.runAs, dsn: c.SocketDSNAs(RestoreRole, db), role: RestoreRole,
		superDSN: c.SocketDSN(db), jobs: t.cfg.Jobs, progress: progress, home: in.ID, log: &restoreLog{}, stream: stream}
	restoreLogs.Store(in.ID, r.log)
	if err := r.run(ctx, b.Format, path, facts); err != nil {
		return err
	}
	progress.Say("ANALYZE")
	if err := analyze(ctx, c.SocketDSNAs(RestoreRole, db)); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	_ = os.RemoveAll(spool) // the restored data is all that is needed now
	in.DSN = c.SocketDSNAs(CheckRole, db)
	return nil
}

// openRestoreStream opens the backup to be restored as it downloads when
// it can be: a custom archive loaded in one pass, or a plain dump, with
// what drill read of its SQL. The stream is nil when it cannot be.
func (t *Target) openRestoreStream(ctx context.Context, b drills.Backup, spool string, report func(int64, int64), progress drills.Progress) (*archiveStream, *plainFacts, error) {
	switch {
	case b.Stream == nil:
	case b.Format == drills.FormatCustom && t.cfg.Jobs == 0:
		// A custom archive starts with its table of contents: when it is
		// to be loaded in one pass, pg_restore reads it as it downloads.
		stream, err := openArchiveStream(ctx, b, spool, report)
		return stream, nil, err
	case b.Format == drills.FormatPlain || b.Format == drills.FormatPlainGzip:
		// psql reads a plain dump in one pass: it is restored as it
		// downloads, once the start of its SQL is read.
		stream, facts, err := openPlainStream(ctx, b, spool, report)
		if err != nil {
			return nil, nil, err
		}
		progress.Say("restoring the dump as it downloads")
		return stream, &facts, nil
	}
	return nil, nil, nil
}

// databaseName is the database the backup is restored into:
// target.database, else the one a plain dump creates, else the backup's,
// else "restored".
func (t *Target) databaseName(b drills.Backup, facts *plainFacts) (string, error) {
	db := t.cfg.Database
	if db == "" && facts != nil && facts.Database != "" {
		if err := dumpDatabaseName(facts.Database); err != nil {
			return "", err
		}
		db = facts.Database
	}
	if db == "" {
		db = b.Database
	}
	if db == "" {
		db = "restored"
	}
	return db, nil
}

// resetClusterDir empties a cluster directory but for its marker, after a
// failed copy of the template.
func resetClusterDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() != markerFile {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// dumpDatabaseName refuses the name a `pg_dump -C` dump creates when it
// holds what psql or a shell could read as more than a name.
func dumpDatabaseName(name string) error {
	if len(name) > 63 || strings.ContainsAny(name, "\\'\":;`$") || strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return fmt.Errorf("%w: the dump creates a database named %q; drill restores into a database of that name only when it is a plain name (set target.database to restore it elsewhere)", ErrUnsafeBackup, name)
	}
	return nil
}

// createRoles makes RestoreRole and CheckRole in a new cluster, and sets
// the superuser's password when setPassword says so.
func createRoles(ctx context.Context, c *Cluster, setPassword bool) error {
	conn, err := connectSuper(ctx, c.SocketDSN("template1"), time.Minute)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	qs := []string{
		"create role " + RestoreRole + " login nosuperuser nocreaterole nocreatedb bypassrls",
		"create role " + CheckRole + " login nosuperuser nocreaterole nocreatedb bypassrls in role pg_read_all_data",
	}
	if setPassword && c.Password != "" {
		// ALTER ROLE takes no parameters: the password is a quoted literal.
		qs = append(qs, "alter role "+pgx.Identifier{c.superuser()}.Sanitize()+" password '"+strings.ReplaceAll(c.Password, "'", "''")+"'")
	}
	for _, q := range qs {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("create the cluster's roles: %w", err)
		}
	}
	return nil
}

// createDatabase makes the database restored into, owned by RestoreRole.
func (t *Target) createDatabase(ctx context.Context, c *Cluster, db string) error {
	conn, err := connectSuper(ctx, c.SocketDSN("postgres"), time.Minute)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	q := "create database " + pgx.Identifier{db}.Sanitize() + " owner " + RestoreRole
	if db == "postgres" {
		q = "alter database postgres owner to " + RestoreRole
	}
	if _, err := conn.Exec(ctx, q); err != nil {
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
	return connectWith(ctx, dsn, statementTimeout, nil)
}

// superParams are set when drill's superuser connects to a cluster made
// from a backup: they win over the backup's per-role and per-database
// settings, so that no search_path puts the backup's functions before
// the built-ins and no library of the backup's is loaded.
var superParams = map[string]string{
	"search_path":               "pg_catalog",
	"session_preload_libraries": "",
	"local_preload_libraries":   "",
}

// connectSuper opens a superuser connection with superParams.
func connectSuper(ctx context.Context, dsn string, statementTimeout time.Duration) (*pgx.Conn, error) {
	return connectWith(ctx, dsn, statementTimeout, superParams)
}

func connectWith(ctx context.Context, dsn string, statementTimeout time.Duration, params map[string]string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["application_name"] = "drill"
	cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(max(statementTimeout.Milliseconds(), 1), 10)
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	return pgx.ConnectConfig(ctx, cfg)
}

// makeSpare copies the template for the next drill while this one
// restores; Destroy waits for it, so that a drill run leaves it whole.
func (t *Target) makeSpare(c *Cluster) {
	t.spares.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_ = c.MakeSpare(ctx, t.cfg.TemplateDir) // without one, the next drill copies the template itself
	})
}

// Settle waits (a minute at most) for the target's background work — a
// spare copy of the template being made — so that the process may exit
// without leaving it half done (Destroy does this too; a kept instance
// is not destroyed).
func (t *Target) Settle(ctx context.Context) { t.waitSpares(ctx) }

// waitSpares waits (a minute at most) for the spares being made.
func (t *Target) waitSpares(ctx context.Context) {
	done := make(chan struct{})
	go func() { t.spares.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	case <-time.After(time.Minute):
	}
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
	defer t.waitSpares(ctx)
	c := t.Cluster(in)
	if err := c.Stop(ctx, "immediate"); err != nil {
		c.killStray()
		if err := c.waitGone(ctx); err != nil {
			return fmt.Errorf("destroy %s: %w", in.ID, err)
		}
	}
	if err := removeMarkedLast(in.ID); err != nil {
		return fmt.Errorf("destroy %s: %w", in.ID, err)
	}
	return nil
}

// removeMarkedLast removes a cluster directory, its marker last: a drill
// killed in the middle leaves a directory that still says whose it is, and
// the sweeper finishes the job.
func removeMarkedLast(dir string) error {
	if err := resetClusterDir(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

var _ drills.Keeper = (*Target)(nil)

// Keep restarts a kept cluster detached (through pg_ctl), so that it
// outlives this process: drill run --keep.
func (t *Target) Keep(ctx context.Context, in drills.Instance) error {
	c := t.Cluster(in)
	if err := c.Stop(ctx, "fast"); err != nil {
		return err
	}
	if err := c.waitGone(ctx); err != nil {
		return err
	}
	return c.Start(ctx)
}

// ConnectHint tells how to reach a kept cluster over its private socket,
// and how to discard it.
func (t *Target) ConnectHint(in drills.Instance) string {
	c := t.Cluster(in)
	db := in.Details["database"]
	if db == "" {
		db = "postgres"
	}
	who := ""
	if t.runAs.set {
		who = fmt.Sprintf(" (as root or %s)", t.runAs.Name)
	}
	until := ""
	if u := in.Details[drills.KeptUntilDetail]; u != "" {
		until = " (the sweeper removes it after " + u + ")"
	}
	return fmt.Sprintf("psql %q%s\ndiscard it when done: drill discard %d%s", c.SocketDSNAs(CheckRole, db), who, in.RunID, until)
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
		return fmt.Sprintf("downloaded %s of %s (%d%%)", drills.HumanBytes(done), drills.HumanBytes(total), done*100/total)
	}
	return "downloaded " + drills.HumanBytes(done)
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

// stage returns where the restore programs, which run as the cluster's OS
// user, read the archive at path: path itself when that user can read all
// of it, else a copy in spool.
func (t *Target) stage(ctx context.Context, spool, path string, progress drills.Progress) (string, error) {
	if !t.runAs.set {
		return path, nil
	}
	if rel, err := filepath.Rel(spool, path); err == nil && !strings.HasPrefix(rel, "..") {
		return path, readableTree(spool) // fetched into the spool
	}
	probe := exec.CommandContext(ctx, "find", path, "-maxdepth", "1", "!", "-readable", "-print", "-quit")
	probe.Env = baseEnv(spool)
	t.runAs.apply(probe)
	if out, err := probe.Output(); err == nil && len(out) == 0 {
		return path, nil
	}
	progress.Say(fmt.Sprintf("copying the backup into the cluster directory: OS user %s cannot read %s", t.runAs.Name, path))
	dst := filepath.Join(spool, filepath.Base(path))
	if err := copyTree(ctx, path, dst); err != nil {
		return "", fmt.Errorf("copy %s for OS user %s: %w", path, t.runAs.Name, err)
	}
	return dst, readableTree(spool)
}

// copyTree copies a regular file, or a directory of regular files (a
// directory-format archive), to dst.
func copyTree(ctx context.Context, src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return copyFile(ctx, src, dst)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			if err := copyFile(ctx, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func copyFile(ctx context.Context, src, dst string) error {
	in, err := drills.OpenRegular(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, drills.ContextReader(ctx, in)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// readableTree makes what drill put in dir (its own files) readable by
// the cluster's user: directories 0755, files 0644. Links are left alone.
func readableTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			return os.Chmod(p, 0o755)
		case d.Type().IsRegular():
			return os.Chmod(p, 0o644)
		}
		return nil
	})
}

var _ drills.CheckPreparer = (*Target)(nil)

// PrepareChecks installs amcheck, in a schema of its own, in the restored
// database when a check needs it, and lets CheckRole run its functions:
// the checks' role cannot create an untrusted extension itself.
func (t *Target) PrepareChecks(ctx context.Context, in drills.Instance, types []string) error {
	if !slices.Contains(types, verify.TypeAmcheck) {
		return nil
	}
	conn, err := connectSuper(ctx, t.Cluster(in).SocketDSN(in.Details["database"]), time.Minute)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// The restored database is the backup's: its functions must not
	// shadow the built-ins this superuser session calls.
	_, err = conn.Exec(ctx, `set search_path = pg_catalog, pg_temp; do $$
declare
	f regprocedure;
	s name;
begin
	if not exists (select 1 from pg_extension where extname = 'amcheck') then
		create schema drill_amcheck;
		create extension amcheck schema drill_amcheck;
	end if;
	select n.nspname into s from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname = 'amcheck';
	execute format('grant usage on schema %I to `+CheckRole+`', s);
	for f in select p.oid::regprocedure from pg_proc p
		join pg_depend d on d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
		join pg_extension e on e.oid = d.refobjid where e.extname = 'amcheck'
	loop
		execute format('grant execute on function %s to `+CheckRole+`', f);
	end loop;
end $$`)
	if err != nil {
		return fmt.Errorf("install amcheck in the restored database: %w", err)
	}
	return nil
}
