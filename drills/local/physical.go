package local

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"drill/drills"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Instance details of a cluster restored from a physical backup.
const (
	// binDetail is the bin directory of the backup's PostgreSQL version.
	binDetail = "pg_bin"
	// superuserDetail is the backup's own superuser (initdb's -U), which
	// sets the restored cluster up over its private socket.
	superuserDetail = "superuser"
)

// ErrHostileBackup means a physical backup holds something that could
// reach outside its throwaway cluster: drill refuses to go on with it.
var ErrHostileBackup = errors.New("physical backup refused: it could reach outside its throwaway cluster")

// minPhysicalVersion is the oldest PostgreSQL major version whose physical
// backups drill restores.
const minPhysicalVersion = 14

// recoveries holds, per instance, the time of the last transaction its
// recovery replayed, until the runner asks.
var recoveries sync.Map // instance id → time.Time

var _ drills.Recoverer = (*Target)(nil)

// RecoveredTo returns the time of the last transaction the recovery of a
// physical backup replayed into in (zero when none).
func (t *Target) RecoveredTo(in drills.Instance) time.Time {
	v, ok := recoveries.LoadAndDelete(in.ID)
	if !ok {
		return time.Time{}
	}
	return v.(time.Time)
}

// provisionPhysical chooses the binaries of the backup's PostgreSQL
// version and makes the cluster's directories; Restore fills them.
func (t *Target) provisionPhysical(in *drills.Instance, p drills.PhysicalBackup, progress drills.Progress) error {
	if v := p.MajorVersion(); v < minPhysicalVersion {
		return fmt.Errorf("the backup was taken by PostgreSQL %d: drill restores physical backups of PostgreSQL %d and later (its checks' role needs pg_read_all_data)", v, minPhysicalVersion)
	}
	bin, err := FindBinariesFor(p.MajorVersion())
	if err != nil {
		return err
	}
	in.Details[binDetail] = bin.Dir
	in.Details["postgres_version"] = bin.version()
	c := t.Cluster(*in)
	progress.Say(fmt.Sprintf("PostgreSQL %s from %s", in.Details["postgres_version"], bin.Dir))
	if err := c.prepareDirs(true); err != nil {
		return err
	}
	for _, d := range []string{c.tablespaceDir(), c.toolDir()} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
		if err := c.RunAs.chown(d); err != nil {
			return err
		}
	}
	return nil
}

// tablespaceDir holds the restored cluster's tablespaces: none is
// restored where it was on the backed-up host.
func (c *Cluster) tablespaceDir() string { return filepath.Join(c.Dir, "tablespaces") }

// toolDir is the backup tool's home, lock and spool directory.
func (c *Cluster) toolDir() string { return filepath.Join(c.Dir, "tool") }

// restorePhysical has the backup tool write the base backup, checks what
// it wrote, replaces every setting the backup brought with drill's own,
// replays WAL to the target, and sets the cluster up for the checks. The
// backup is untrusted: its files may hold links out of the run's
// directory, and its catalogs settings, event triggers and functions that
// would run code as drill's superuser connects — none of them may.
func (t *Target) restorePhysical(ctx context.Context, in *drills.Instance, p drills.PhysicalBackup, progress drills.Progress) error {
	c := t.Cluster(*in)
	log := &restoreLog{}
	restoreLogs.Store(in.ID, log)
	run := t.toolRunner(c.toolDir(), log)
	progress.Say("restoring the base backup")
	dirs := drills.RestoreDirs{Data: c.DataDir(), Tablespaces: c.tablespaceDir(), Work: c.toolDir()}
	if err := p.Restore(ctx, dirs, run); err != nil {
		return err
	}
	if err := checkRestoredTree(dirs); err != nil {
		return fmt.Errorf("%w: %v", ErrHostileBackup, err)
	}
	if v, err := readSmall(filepath.Join(c.DataDir(), "PG_VERSION"), 16); err != nil || strings.TrimSpace(v) != strconv.Itoa(p.MajorVersion()) {
		return fmt.Errorf("the restored data directory is not of PostgreSQL %d (its PG_VERSION says otherwise)", p.MajorVersion())
	}
	if err := t.ownSettings(c, p, dirs); err != nil {
		return fmt.Errorf("write the restored cluster's settings: %w", err)
	}
	if err := c.replayWAL(ctx, p, log, progress); err != nil {
		return err
	}
	if err := t.findSuperuser(ctx, in, c); err != nil {
		return err
	}
	at, err := replayedTo(ctx, c)
	if err != nil {
		return err
	}
	if at.After(time.Now().Add(time.Minute)) {
		return fmt.Errorf("%w: the last transaction replayed is dated %s, in the future", ErrHostileBackup, at.UTC().Format(time.RFC3339))
	}
	if !at.IsZero() {
		recoveries.Store(in.ID, at)
	}
	if len(p.Env()) > 0 {
		// The tool's environment (an endpoint, credentials) was for the
		// replay only: nothing that connects from now on may find it.
		progress.Say("restarting PostgreSQL without the backup tool's environment")
		if err := c.Stop(ctx, "fast"); err != nil {
			return err
		}
		if err := c.waitGone(ctx); err != nil {
			return err
		}
		if err := c.StartAttached(ctx); err != nil {
			return err
		}
	}
	if err := disarmSettings(ctx, c); err != nil {
		return err
	}
	if err := createRoles(ctx, c, false); err != nil {
		return err
	}
	db, err := t.physicalDatabase(ctx, c)
	if err != nil {
		return err
	}
	if err := disarmDatabase(ctx, c, db); err != nil {
		return err
	}
	in.Details["database"] = db
	progress.Say("checking database " + db)
	in.DSN = c.SocketDSNAs(CheckRole, db)
	return nil
}

// replayWAL starts the restored cluster, with the backup tool's
// environment, and waits while it replays WAL to the backup's target time
// (or to the end of the archive, which it checks it reached) and accepts
// connections, saying how far the replay is. The server's log joins the
// restore log.
func (c *Cluster) replayWAL(ctx context.Context, p drills.PhysicalBackup, log *restoreLog, progress drills.Progress) error {
	goal := " to the end of the archived WAL"
	if tt := p.TargetTime(); !tt.IsZero() {
		goal = " to " + tt.UTC().Format(time.RFC3339)
	}
	progress.Say(fmt.Sprintf("replaying WAL%s on 127.0.0.1:%d", goal, c.Port))
	last, lastErr := p.LastWAL(ctx)
	// Only what the server writes from now on is read back: anything in
	// the log before (the tool ran as the cluster's user) is ignored.
	logStart := fileSize(c.logFile())
	env := append(baseEnv(c.toolDir()), p.Env()...)
	replay := replayProgress{start: time.Now(), last: last}
	err := c.startAttached(ctx, env, 0, func() {
		if seg := newestRestoredWAL(c.logFile(), logStart, 64<<10); seg != "" {
			progress.Say(replay.say(seg))
		}
	})
	addServerLog(log, c.logFile(), logStart)
	if err != nil {
		if fatal := serverFatal(c.logFile(), logStart); fatal != "" && ctx.Err() == nil {
			return fmt.Errorf("recovery%s failed: %s (the server's log is the run's restore log)", goal, fatal)
		}
		return fmt.Errorf("recovery%s failed: %w", goal, err)
	}
	if p.TargetTime().IsZero() {
		// Recovery to the end of the archive stops quietly at the first
		// segment it cannot fetch: make sure that was past the newest.
		got := newestRestoredWAL(c.logFile(), logStart, 0)
		switch {
		case lastErr != nil:
			return fmt.Errorf("list the archived WAL: %w", lastErr)
		case last != "" && (got == "" || segmentNumber(got) < segmentNumber(last)):
			if got == "" {
				got = "none"
			}
			return fmt.Errorf("recovery stopped before the end of the archived WAL: it replayed segments up to %s, but the archive holds segments up to %s; a segment between them is missing or unreadable", got, last)
		}
	}
	return nil
}

// replayProgress says how far the replay is through the archived WAL, with
// an ETA from the rate so far.
type replayProgress struct {
	start time.Time
	first uint64 // the first segment seen restored
	last  string // the archive's newest segment, or ""
}

func (r *replayProgress) say(seg string) string {
	msg := "replayed WAL up to segment " + seg
	if r.last == "" {
		return msg
	}
	cur, err1 := strconv.ParseUint(segmentNumber(seg), 16, 64)
	end, err2 := strconv.ParseUint(segmentNumber(r.last), 16, 64)
	if err1 != nil || err2 != nil {
		return msg + " (the archive ends at " + r.last + ")"
	}
	if r.first == 0 || cur < r.first {
		r.first = cur
	}
	msg += fmt.Sprintf(" of %s", r.last)
	if done, elapsed := cur-r.first, time.Since(r.start); done > 0 && end > cur && elapsed > 2*time.Second {
		left := time.Duration(float64(elapsed) * float64(end-cur) / float64(done))
		msg += ", about " + drills.HumanDuration(left.Round(time.Second)) + " left"
	}
	return msg
}

// disarmSettings removes every per-role and per-database setting the
// backup brought (ALTER ROLE … SET, ALTER DATABASE … SET): a
// search_path that puts the backup's functions first, a
// session_preload_libraries that loads its code.
func disarmSettings(ctx context.Context, c *Cluster) error {
	conn, err := connectSuper(ctx, c.SocketDSN("template1"), time.Minute)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "delete from pg_catalog.pg_db_role_setting"); err != nil {
		return fmt.Errorf("remove the backup's role and database settings: %w", err)
	}
	return nil
}

// disarmDatabase makes the checked database safe to run checks and
// drill's own statements in: a C function loading a library from outside
// PostgreSQL's library directory fails the drill; its event triggers are
// removed (drill's superuser runs DDL there, for amcheck); and no one but
// its owner may call a function that would run as someone else (SECURITY
// DEFINER) or outside SQL's sandbox (an untrusted language).
func disarmDatabase(ctx context.Context, c *Cluster, db string) error {
	conn, err := connectSuper(ctx, c.SocketDSN(db), time.Minute)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// A C function's library is loaded whoever calls it, with no right to
	// check (a type's input and output functions, say): one from outside
	// PostgreSQL's library directory would be code of the backup's own.
	var fn, lib string
	err = conn.QueryRow(ctx, `select p.oid::pg_catalog.regprocedure::text, p.probin from pg_catalog.pg_proc p
		join pg_catalog.pg_language l on l.oid = p.prolang
		where l.lanname = 'c' and p.probin is not null
		  and (p.probin like '%..%' or (p.probin like '%/%' and p.probin not like '$libdir/%'))
		order by 1 limit 1`).Scan(&fn, &lib)
	switch {
	case err == nil:
		return fmt.Errorf("%w: function %s of database %s loads %s, a library from outside PostgreSQL's library directory", ErrHostileBackup, fn, db, strconv.Quote(lib))
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("inspect the restored database %s: %w", db, err)
	}
	_, err = conn.Exec(ctx, `delete from pg_catalog.pg_event_trigger;
do $$
declare
	f pg_catalog.regprocedure;
begin
	for f in select p.oid::pg_catalog.regprocedure from pg_catalog.pg_proc p join pg_catalog.pg_language l on l.oid = p.prolang
		where p.pronamespace not in ('pg_catalog'::pg_catalog.regnamespace, 'information_schema'::pg_catalog.regnamespace)
		  and (p.prosecdef or (not l.lanpltrusted and l.lanname not in ('internal', 'c')))
	loop
		execute pg_catalog.format('revoke all on routine %s from public', f);
	end loop;
end $$`)
	if err != nil {
		return fmt.Errorf("disarm the restored database %s: %w", db, err)
	}
	return nil
}

// toolRunner runs the backup tool as the cluster's OS user, in its own
// directory, with a clean environment plus env; what it prints goes to
// the restore log.
func (t *Target) toolRunner(dir string, log *restoreLog) drills.ToolRunner {
	return func(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir, cmd.Env = dir, append(baseEnv(dir), env...)
		t.runAs.apply(cmd)
		attach(cmd, true)
		var out bytes.Buffer
		cmd.Stdout = &out
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		for _, b := range [][]byte{out.Bytes(), stderr.Bytes()} {
			for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
				if line != "" {
					log.add(line)
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%s: %w: %s", filepath.Base(name), err, redact(tail(stderr.Bytes(), 1500)))
		}
		return out.Bytes(), nil
	}
}

// ownSettings replaces every configuration file the backup brought: a
// backup is untrusted, and its settings could archive into production's
// repository, connect to production as a standby, or load a library. The
// cluster gets drill's throwaway settings, a private socket, no TCP login,
// no archiving, and the recovery target.
func (t *Target) ownSettings(c *Cluster, p drills.PhysicalBackup, dirs drills.RestoreDirs) error {
	for _, name := range []string{"postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf",
		"recovery.conf", "recovery.signal", "standby.signal", "postmaster.pid", "postmaster.opts", "tablespace_map"} {
		if err := os.Remove(filepath.Join(c.DataDir(), name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	files := map[string]string{
		"postgresql.conf":      "# written by drill: none of the backup's settings are used\n",
		"postgresql.auto.conf": "# written by drill: ALTER SYSTEM settings of the backup are not used\n",
		"pg_hba.conf":          "local all all trust\nhost all all all reject\n",
		"pg_ident.conf":        "",
		"recovery.signal":      "",
	}
	for name, content := range files {
		if err := c.WriteDataFile(name, []byte(content)); err != nil {
			return err
		}
	}
	c.Settings = ThrowawaySettings()
	// The log is read back: its lines in one known form and zone.
	c.Settings["log_line_prefix"] = "'%m [%p] '"
	c.Settings["log_timezone"] = "'UTC'"
	c.Settings["timezone"] = "'UTC'"
	c.Settings["wal_level"] = "replica" // archive recovery of WAL from a replica-level primary
	c.Settings["hot_standby"] = "off"   // nothing connects before the target is reached
	c.Settings["restore_command"] = quoteConf(p.RestoreCommand(dirs))
	c.Settings["recovery_target_timeline"] = "'latest'"
	c.Settings["recovery_target_action"] = "'promote'"
	if tt := p.TargetTime(); !tt.IsZero() {
		c.Settings["recovery_target_time"] = quoteConf(RecoveryTime(tt))
	}
	return c.writeSettings()
}

// RecoveryTime writes t the way recovery_target_time reads it.
func RecoveryTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05.999999") + "+00"
}

var restoredWAL = regexp.MustCompile(`restored log file "([0-9A-F]{24})" from archive`)

// newestRestoredWAL returns the newest WAL segment the server log says was
// restored from the archive, reading from offset from, at most the last
// limit bytes (0: all of it).
func newestRestoredWAL(logFile string, from, limit int64) string {
	newest := ""
	_ = serverLogLines(logFile, from, limit, func(line string) {
		if m := restoredWAL.FindStringSubmatch(line); m != nil && (newest == "" || segmentNumber(m[1]) > segmentNumber(newest) || segmentNumber(m[1]) == segmentNumber(newest) && m[1] > newest) {
			newest = m[1]
		}
	})
	return newest
}

// segmentNumber is a WAL segment's place in the WAL, whatever its
// timeline: the last 16 hex digits of its name.
func segmentNumber(name string) string {
	if len(name) != 24 {
		return name
	}
	return name[8:]
}

// serverLogLines calls fn with each line of the server log from offset
// from (the last limit bytes of it when limit > 0).
func serverLogLines(logFile string, from, limit int64, fn func(string)) error {
	f, err := os.Open(logFile)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if limit > 0 && fi.Size()-limit > from {
		from = fi.Size() - limit
	}
	if _, err := f.Seek(from, 0); err != nil {
		return err
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fn(sc.Text())
	}
	return sc.Err()
}

// addServerLog copies the server log from offset from (the recovery)
// into the restore log.
func addServerLog(log *restoreLog, logFile string, from int64) {
	_ = serverLogLines(logFile, from, 4<<20, func(line string) {
		if line != "" {
			log.add(line)
		}
	})
}

var fatalLine = regexp.MustCompile(`\b(FATAL|PANIC):\s+(.*)$`)

// serverFatal is what the server said when it gave up (its FATAL and
// PANIC lines from offset from, joined), or "".
func serverFatal(logFile string, from int64) string {
	var out []string
	_ = serverLogLines(logFile, from, 1<<20, func(line string) {
		if m := fatalLine.FindStringSubmatch(line); m != nil && len(out) < 3 {
			out = append(out, m[1]+": "+m[2])
		}
	})
	return strings.Join(out, "; ")
}

// fileSize is the size of a file, or 0.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readSmall reads at most n bytes of a regular file that is not a link.
func readSmall(path string, n int) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	b := make([]byte, n)
	k, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", err
	}
	return string(b[:k]), nil
}

// checkRestoredTree refuses a restored data directory (and tablespaces)
// holding anything but directories and regular files with one link each,
// besides pg_tblspc/OID links to a directory under dirs.Tablespaces: a
// link, a hard link or a device there could make the server, or drill,
// read or write outside the run's directory.
func checkRestoredTree(dirs drills.RestoreDirs) error {
	tsRoot := filepath.Clean(dirs.Tablespaces) + string(filepath.Separator)
	check := func(root string, links bool) error {
		return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			info, err := d.Info()
			if err != nil {
				return err
			}
			switch mode := info.Mode(); {
			case mode.IsDir():
				return nil
			case mode.IsRegular():
				if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
					return fmt.Errorf("%s has %d hard links", rel, st.Nlink)
				}
				return nil
			case mode&fs.ModeSymlink != 0 && links && filepath.Dir(rel) == "pg_tblspc":
				target, err := os.Readlink(p)
				if err != nil {
					return err
				}
				if _, err := strconv.ParseUint(filepath.Base(rel), 10, 32); err != nil || !filepath.IsAbs(target) ||
					!strings.HasPrefix(filepath.Clean(target)+string(filepath.Separator), tsRoot) {
					return fmt.Errorf("%s links to %s, outside the run's tablespace directory", rel, target)
				}
				if fi, err := os.Lstat(target); err != nil || !fi.IsDir() {
					return fmt.Errorf("%s links to %s, which is not a directory", rel, target)
				}
				return nil
			default:
				return fmt.Errorf("%s is %s: a backup holds directories and regular files only", rel, drills.SpecialMode(mode))
			}
		})
	}
	if err := check(dirs.Data, true); err != nil {
		return fmt.Errorf("the restored data directory: %w", err)
	}
	if err := check(dirs.Tablespaces, false); err != nil {
		return fmt.Errorf("the restored tablespaces: %w", err)
	}
	return nil
}

// findSuperuser finds the backup's bootstrap superuser: postgres, else the
// cluster's OS user (initdb's default).
func (t *Target) findSuperuser(ctx context.Context, in *drills.Instance, c *Cluster) error {
	candidates := []string{"postgres"}
	if t.runAs.Name != "" && t.runAs.Name != "postgres" {
		candidates = append(candidates, t.runAs.Name)
	}
	var lastErr error
	for _, name := range candidates {
		conn, err := connectSuper(ctx, c.SocketDSNAs(name, "template1"), time.Minute)
		if err == nil {
			var super bool
			err = conn.QueryRow(ctx, "select rolsuper from pg_catalog.pg_roles where rolname = current_user").Scan(&super)
			conn.Close(context.WithoutCancel(ctx))
			if err == nil && super {
				in.Details[superuserDetail] = name
				c.Superuser = name
				return nil
			}
		}
		var pgErr *pgconn.PgError
		if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "28000") {
			return fmt.Errorf("connect to the restored cluster: %w", err)
		}
		lastErr = err
	}
	return fmt.Errorf("the restored cluster has no superuser named %s: drill sets it up as its bootstrap superuser (%v)", strings.Join(candidates, " or "), lastErr)
}

// replayedTo returns the time of the last transaction the recovery
// replayed, which the server keeps after promotion (zero when none).
func replayedTo(ctx context.Context, c *Cluster) (time.Time, error) {
	conn, err := connectSuper(ctx, c.SocketDSN("template1"), time.Minute)
	if err != nil {
		return time.Time{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var at *time.Time
	var inRecovery bool
	if err := conn.QueryRow(ctx, "select pg_catalog.pg_last_xact_replay_timestamp(), pg_catalog.pg_is_in_recovery()").Scan(&at, &inRecovery); err != nil {
		return time.Time{}, fmt.Errorf("read the recovery point: %w", err)
	}
	if inRecovery {
		return time.Time{}, errors.New("the restored cluster is still in recovery after it accepted connections")
	}
	if at == nil {
		return time.Time{}, nil
	}
	return *at, nil
}

// physicalDatabase is the database the checks run in: target.database,
// else the largest database of the restored cluster besides postgres,
// else postgres.
func (t *Target) physicalDatabase(ctx context.Context, c *Cluster) (string, error) {
	conn, err := connectSuper(ctx, c.SocketDSN("template1"), time.Minute)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if db := t.cfg.Database; db != "" {
		var ok bool
		if err := conn.QueryRow(ctx, "select exists (select 1 from pg_catalog.pg_database where datname = $1 and datallowconn)", db).Scan(&ok); err != nil {
			return "", err
		}
		if !ok {
			return "", fmt.Errorf("target.database %q is not a database of the restored cluster", db)
		}
		return db, nil
	}
	var db string
	err = conn.QueryRow(ctx, `select coalesce((select datname from pg_catalog.pg_database where datallowconn and not datistemplate and datname <> 'postgres'
		order by pg_catalog.pg_database_size(oid) desc, datname limit 1), 'postgres')`).Scan(&db)
	return db, err
}
