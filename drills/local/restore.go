package local

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"drill/drills"

	"github.com/jackc/pgx/v5"
)

func numCPU() int { return runtime.NumCPU() }

var versionRe = regexp.MustCompile(`\(PostgreSQL\) (\d+(?:\.\d+)*)`)

// version returns the version of the binaries, from pg_restore --version
// ("pg_restore (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)" gives 15.20).
func (b Binaries) version() string {
	out, err := exec.Command(b.Path("pg_restore"), "--version").Output()
	if err != nil {
		return ""
	}
	return parseVersion(out)
}

// parseVersion reads the version from a --version line of PostgreSQL's
// programs.
func parseVersion(out []byte) string {
	if m := versionRe.FindSubmatch(out); m != nil {
		return string(m[1])
	}
	return ""
}

// RestoreArchive loads the archive at path (of format, see drills.Format*)
// into the database dsn names, with pg_restore or psql from bin, as this
// process's OS user and the role of dsn. It serves the RDS emulator, whose
// "production" databases are made from test fixtures; drill's own targets
// restore as an unprivileged role and OS user (see Target.Restore).
func RestoreArchive(ctx context.Context, bin Binaries, dsn, format, path string, jobs int, progress drills.Progress) error {
	home, err := os.MkdirTemp("", "drill-restore-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(home)
	return restoreCmd{bin: bin, dsn: dsn, jobs: jobs, progress: progress, home: home}.run(ctx, format, path, nil)
}

// restoreCmd loads one backup into a database. The restore programs run as
// runAs, with an environment that holds nothing of drill's (see toolEnv),
// connected as the role of dsn; superDSN, when set, is a superuser's
// connection to the same database, used only to make the extensions the
// restore role may not make (see prepareExtensions).
type restoreCmd struct {
	bin      Binaries
	runAs    RunAs
	dsn      string
	role     string // the role of dsn
	superDSN string
	jobs     int // pg_restore --jobs; 0 chooses per archive (loadPlan)
	progress drills.Progress
	home     string // HOME and working directory of the programs: runAs's own
	log      *restoreLog
	items    int // the items of the archive's table of contents pg_restore restores (0: unknown)
	// stream, when not nil, is a custom archive being downloaded, whose
	// start is at path: pg_restore reads it as it arrives.
	stream *archiveStream
}

// listItems counts the entries of a pg_restore --use-list file.
func listItems(list string) int {
	n := 0
	for _, line := range strings.Split(list, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, ";") {
			n++
		}
	}
	return n
}

// run restores the backup at path. facts, when not nil, is what scanPlain
// already read of a plain dump.
func (r restoreCmd) run(ctx context.Context, format, path string, facts *plainFacts) error {
	switch format {
	case drills.FormatCustom, drills.FormatDirectory, drills.FormatTar:
		return r.archive(ctx, format, path)
	case drills.FormatPlain, drills.FormatPlainGzip:
		if facts == nil {
			f, err := readPlainFacts(format, path)
			if err != nil {
				return err
			}
			facts = &f
		}
		return r.plain(ctx, format, path, *facts)
	default:
		return fmt.Errorf("restore: unsupported backup format %q", format)
	}
}

// archive restores a custom, directory or tar archive with pg_restore,
// leaving out owners, privileges, publications, subscriptions, security
// labels and tablespaces, and checks that every table's data was restored.
func (r restoreCmd) archive(ctx context.Context, format, path string) (err error) {
	toc, err := r.output(ctx, r.bin.Path("pg_restore"), "--list", path)
	if err != nil {
		return fmt.Errorf("restore: read the archive's table of contents: %w", err)
	}
	dataIDs := tableDataIDs(toc)
	if err := checkArchiveData(format, path, dataIDs); err != nil {
		return err
	}
	if format == drills.FormatDirectory {
		cctx, stop := context.WithCancel(ctx)
		defer stop()
		compressed := checkCompressedData(cctx, path, dataIDs)
		defer func() {
			// a data file cut short says more than what pg_restore made of it
			// (a deadline or an interruption is pg_restore's to report)
			if cerr := <-compressed; cerr != nil && !errors.Is(cerr, context.Canceled) && !errors.Is(cerr, context.DeadlineExceeded) {
				err = cerr
			}
		}()
	}
	var exts []extension
	if names := tocExtensions(toc); len(names) > 0 {
		exts, err = r.archiveExtensions(ctx, path, toc)
		if err != nil {
			return err
		}
	}
	premade, skipped, schemas, err := r.prepareExtensions(ctx, exts)
	if err != nil {
		return err
	}
	list, tableData := restoreList(toc, premade, skipped, schemas)
	listFile := filepath.Join(r.home, "restore.list")
	if err := r.writeFile(listFile, list); err != nil {
		return err
	}
	defer os.Remove(listFile)
	args := []string{"--dbname", r.dsn, "--no-owner", "--no-privileges", "--no-publications", "--no-subscriptions",
		"--no-security-labels", "--no-tablespaces", "--verbose", "--use-list", listFile}
	plan := r.loadPlan(format, path, toc)
	args = append(args, plan.args...)
	var stdin io.Reader
	var feed *feeder
	if r.stream != nil {
		if feed, err = feed.start(r.stream.r); err != nil {
			return err
		}
		stdin = feed.pr
	} else {
		args = append(args, path)
	}
	r.progress.Say(fmt.Sprintf("pg_restore (%s format, %s)", format, plan.why))
	r.items = listItems(list)
	out, err := r.exec(ctx, exec.CommandContext(ctx, r.bin.Path("pg_restore"), args...), stdin, false)
	if r.stream != nil {
		if err != nil {
			r.stream.Close() // a feed waiting for the download stops
		}
		feed.stop()
		if err == nil {
			err = r.stream.finish() // the rest of the archive, if any, is read and hashed
		}
		if serr := r.stream.failed(); serr != nil {
			// The download's own failure says more than pg_restore's
			// "could not read from input file".
			return fmt.Errorf("download: %w", serr)
		}
	}
	if err != nil {
		return err
	}
	if out.tableData < tableData {
		return fmt.Errorf("%w: pg_restore restored the data of %d of the %d tables in the archive's table of contents", ErrTruncated, out.tableData, tableData)
	}
	return nil
}

// load is how pg_restore loads an archive: its arguments, and why.
type load struct {
	args   []string
	why    string
	single bool // in one transaction, over one connection
}

// singleShare is the share of an archive's data one table must hold for
// one transaction to load it faster than a job per core. In one
// transaction with wal_level=minimal, COPY into the tables the transaction
// made writes no WAL, which saves about a tenth of the restore (measured:
// BenchmarkRestoreSettings); --jobs loads tables and builds indexes side by
// side, and can go no faster than its largest table. One transaction wins
// only when that table is nearly the whole archive.
const singleShare = 0.9

// loadPlan chooses between --jobs and --single-transaction for an
// archive (see chooseLoad).
func (r restoreCmd) loadPlan(format, path, toc string) load {
	if r.stream != nil {
		return r.stream.plan // chosen from the table of contents as it arrived
	}
	s, ok := spreadOf(format, path, toc)
	return chooseLoad(format, s, ok, listItems(toc), r.jobs)
}

// maxSingleEntries is the most entries a table of contents may have for
// its archive to load in one transaction: each table, index and sequence
// made holds a lock until the end of the transaction, and the lock table
// (max_locks_per_transaction, see ThrowawaySettings) has room for about
// 28,000.
const maxSingleEntries = 5000

// chooseLoad chooses how pg_restore loads an archive of format with
// entries entries in its table of contents, whose table data is spread as
// s (when ok). A target's jobs setting, when given, is used as it is;
// else a tar archive (which pg_restore cannot load in parallel), a host
// with one core, or an archive whose data is nearly all one table's loads
// in one transaction (unless it makes too many objects for one), and any
// other with one job per core.
func chooseLoad(format string, s dataSpread, ok bool, entries, jobs int) load {
	cores := numCPU()
	if jobs > 0 || entries > maxSingleEntries {
		if jobs <= 0 {
			jobs = cores
		}
		if format == drills.FormatTar || jobs == 1 { // pg_restore cannot run tar archives in parallel
			return load{why: "1 job"}
		}
		return load{args: []string{"--jobs", strconv.Itoa(jobs)}, why: fmt.Sprintf("%d jobs", jobs)}
	}
	single := load{args: []string{"--single-transaction"}, single: true}
	switch {
	case format == drills.FormatTar:
		single.why = "one transaction: a tar archive loads over one connection"
		return single
	case cores == 1:
		single.why = "one transaction: one core"
		return single
	case ok && s.share() >= singleShare:
		single.why = "one transaction: " + s.largest()
		return single
	}
	return load{args: []string{"--jobs", strconv.Itoa(cores)}, why: fmt.Sprintf("%d jobs", cores)}
}

// archiveExtensions returns the extensions of an archive with their
// schemas, from the SQL pg_restore writes (not runs) for them.
func (r restoreCmd) archiveExtensions(ctx context.Context, path, toc string) ([]extension, error) {
	var list strings.Builder
	for _, line := range strings.Split(toc, "\n") {
		if desc, _ := tocEntry(line); desc == "EXTENSION" {
			list.WriteString(line + "\n")
		}
	}
	listFile := filepath.Join(r.home, "extensions.list")
	if err := r.writeFile(listFile, list.String()); err != nil {
		return nil, err
	}
	defer os.Remove(listFile)
	sql, err := r.output(ctx, r.bin.Path("pg_restore"), "--file", "-", "--use-list", listFile, path)
	if err != nil {
		return nil, fmt.Errorf("restore: read the archive's extensions: %w", err)
	}
	f, err := scanPlain(strings.NewReader(sql))
	return f.Extensions, err
}

// tocEntry returns the kind (TABLE DATA, EXTENSION, COMMENT, SCHEMA...)
// and the rest of a line of `pg_restore --list`, or "" for a comment.
// A line reads "ID; TABLEOID OID KIND SCHEMA NAME OWNER".
func tocEntry(line string) (desc string, rest []string) {
	if strings.HasPrefix(line, ";") {
		return "", nil
	}
	f := strings.Fields(line)
	if len(f) < 5 || !strings.HasSuffix(f[0], ";") {
		return "", nil
	}
	f = f[3:]
	for _, two := range []string{"TABLE DATA", "MATERIALIZED VIEW DATA", "SEQUENCE SET", "LARGE OBJECT", "DEFAULT ACL"} {
		if w := strings.Fields(two); len(f) > len(w) && strings.Join(f[:len(w)], " ") == two {
			return two, f[len(w):]
		}
	}
	return f[0], f[1:]
}

func tocExtensions(toc string) []string {
	var names []string
	for _, line := range strings.Split(toc, "\n") {
		if desc, rest := tocEntry(line); desc == "EXTENSION" && len(rest) >= 2 {
			names = append(names, rest[1])
		}
	}
	return names
}

// restoreList returns the table of contents to restore (without the
// extensions made beforehand or not at all, their comments, and the schemas
// made beforehand) and the number of TABLE DATA entries in it.
func restoreList(toc string, premade, skipped, schemas map[string]bool) (string, int) {
	var b strings.Builder
	n := 0
	for _, line := range strings.Split(toc, "\n") {
		desc, rest := tocEntry(line)
		leave := false
		switch {
		case desc == "EXTENSION" && len(rest) >= 2:
			leave = premade[rest[1]] || skipped[rest[1]]
		case desc == "COMMENT" && len(rest) >= 3 && rest[1] == "EXTENSION":
			leave = true // only an extension's owner may comment on it
		case desc == "SCHEMA" && len(rest) >= 2:
			leave = schemas[rest[1]]
		case desc == "TABLE DATA":
			n++
		}
		if leave {
			b.WriteString(";")
		}
		b.WriteString(line + "\n")
	}
	return b.String(), n
}

// superuserExtensions are the untrusted extensions drill makes (as the
// cluster's superuser, from the host's files) when a backup has them: they
// read statistics or check data, and reach neither the host's files, the
// network nor a shell. Any other untrusted extension (dblink, postgres_fdw,
// file_fdw, adminpack, untrusted languages...) is not made: what needs it
// fails to restore.
var superuserExtensions = map[string]bool{
	"pg_stat_statements": true, "amcheck": true, "pg_buffercache": true, "pgstattuple": true,
	"pg_visibility": true, "pg_freespacemap": true, "pg_prewarm": true, "pgrowlocks": true,
	"pg_walinspect": true, "postgis": true, "postgis_raster": true, "postgis_topology": true,
	"address_standardizer": true, "vector": true,
}

// prepareExtensions makes, as the superuser, the extensions of a backup
// that only a superuser may make (pg_stat_statements, amcheck...), from the
// host's extension files, in their schemas (made for the restore role).
// Trusted extensions are left to the restore; denied ones are not made.
// It returns the extensions made, those left out, and the schemas made.
func (r restoreCmd) prepareExtensions(ctx context.Context, exts []extension) (premade, skipped, schemas map[string]bool, err error) {
	premade, skipped, schemas = map[string]bool{}, map[string]bool{}, map[string]bool{}
	if r.superDSN == "" || len(exts) == 0 {
		return premade, skipped, schemas, nil
	}
	conn, err := connectSuper(ctx, r.superDSN, time.Minute)
	if err != nil {
		return nil, nil, nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, e := range exts {
		var trusted, available bool
		err := conn.QueryRow(ctx, `select coalesce(bool_or(trusted), false), count(*) > 0
			from pg_available_extension_versions where name = $1`, e.Name).Scan(&trusted, &available)
		if err != nil {
			return nil, nil, nil, err
		}
		if trusted || !available {
			continue // the restore makes it, or fails saying it is not installed
		}
		if !superuserExtensions[e.Name] {
			skipped[e.Name] = true
			r.progress.Say(fmt.Sprintf("not making extension %s: only a superuser may, and drill makes only extensions that cannot reach the host (what needs it will fail to restore)", e.Name))
			continue
		}
		schema := e.Schema
		if schema == "" {
			schema = "public"
		}
		if schema != "public" && schema != "pg_catalog" && !schemas[schema] {
			q := "create schema if not exists " + pgx.Identifier{schema}.Sanitize()
			if r.role != "" {
				q += " authorization " + pgx.Identifier{r.role}.Sanitize()
			}
			if _, err := conn.Exec(ctx, q); err != nil {
				return nil, nil, nil, fmt.Errorf("restore: create schema %s for extension %s: %w", schema, e.Name, err)
			}
			schemas[schema] = true
		}
		r.progress.Say(fmt.Sprintf("making extension %s (needs a superuser)", e.Name))
		q := fmt.Sprintf("create extension if not exists %s with schema %s", pgx.Identifier{e.Name}.Sanitize(), pgx.Identifier{schema}.Sanitize())
		if _, err := conn.Exec(ctx, q); err != nil {
			return nil, nil, nil, fmt.Errorf("restore: create extension %s: %w", e.Name, err)
		}
		premade[e.Name] = true
	}
	return premade, skipped, schemas, nil
}

// readPlainFacts reads the start of the plain dump at path.
func readPlainFacts(format, path string) (plainFacts, error) {
	in, closeIn, err := openPlain(format, path)
	if err != nil {
		return plainFacts{}, err
	}
	defer closeIn()
	return scanPlain(in)
}

// openPlain opens a plain dump, uncompressing a gzipped one.
func openPlain(format, path string) (io.Reader, func(), error) {
	f, err := drills.OpenRegular(path)
	if err != nil {
		return nil, nil, err
	}
	in, err := plainReader(format, f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("restore: %s: %w", path, err)
	}
	return in, func() { f.Close() }, nil
}

// plainReader reads the SQL of a plain dump from r, uncompressing a
// gzipped one.
func plainReader(format string, r io.Reader) (io.Reader, error) {
	if format != drills.FormatPlainGzip {
		return r, nil
	}
	gz, err := gzip.NewReader(bufio.NewReaderSize(r, 256*1024))
	if err != nil {
		return nil, fmt.Errorf("not a valid gzip file: %w", err)
	}
	return gz, nil
}

// restrictSince is the first minor release of each major version whose
// psql has \restrict (August 2025; every release from 18 on).
var restrictSince = map[int]int{13: 22, 14: 19, 15: 14, 16: 10, 17: 6}

// psqlRestricts reports whether the psql of bin has \restrict, without
// which drill does not hand it a backup.
func (b Binaries) psqlRestricts() error {
	out, err := exec.Command(b.Path("psql"), "--version").Output()
	if err != nil {
		return fmt.Errorf("psql --version: %w", err)
	}
	m := versionRe.FindSubmatch(out)
	if m == nil {
		return fmt.Errorf("psql --version: cannot read %q", strings.TrimSpace(string(out)))
	}
	parts := strings.SplitN(string(m[1]), ".", 3)
	major, _ := strconv.Atoi(parts[0])
	minor := 0
	if len(parts) > 1 {
		minor, _ = strconv.Atoi(parts[1])
	}
	if since, ok := restrictSince[major]; major >= 18 || ok && minor >= since {
		return nil
	}
	return fmt.Errorf("psql %s cannot refuse a backup's psql commands (\\restrict came with PostgreSQL 13.22, 14.19, 15.14, 16.10, 17.6 and 18): update PostgreSQL's client programs to restore plain-SQL dumps", m[1])
}

// plain restores a plain-SQL dump with psql, through plainFilter.
func (r restoreCmd) plain(ctx context.Context, format, path string, facts plainFacts) error {
	if err := r.bin.psqlRestricts(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	premade, skipped, schemas, err := r.prepareExtensions(ctx, facts.Extensions)
	if err != nil {
		return err
	}
	var in io.Reader
	if r.stream != nil {
		if in, err = plainReader(format, r.stream.r); err != nil {
			return err
		}
	} else {
		var closeIn func()
		if in, closeIn, err = openPlain(format, path); err != nil {
			return err
		}
		defer closeIn()
	}
	in = drills.ContextReader(ctx, in)
	filter := &plainFilter{key: RandomPassword() + RandomPassword(), connect: facts.Database != "",
		premade: premade, skipped: skipped, schemas: schemas}
	pr, pw := io.Pipe()
	filterErr := make(chan error, 1)
	go func() {
		err := filter.run(in, pw)
		pw.CloseWithError(err)
		filterErr <- err
	}()
	r.progress.Say("psql (plain SQL, psql commands refused)")
	cmd := exec.CommandContext(ctx, r.bin.Path("psql"), "--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1",
		"--dbname", r.dsn, "--file", "-")
	_, runErr := r.exec(ctx, cmd, pr, true)
	pr.CloseWithError(errors.New("psql has ended")) // lets the filter return
	if runErr != nil && r.stream != nil {
		r.stream.Close() // a filter waiting for the download stops
	}
	ferr := <-filterErr
	if r.stream != nil {
		if runErr == nil && ferr == nil {
			runErr = r.stream.finish() // read to its end, and hashed
		}
		if serr := r.stream.failed(); serr != nil {
			return fmt.Errorf("download: %w", serr)
		}
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case ferr != nil && !isWriteErr(ferr):
		return fmt.Errorf("restore: %w", ferr)
	}
	return runErr
}

// toolEnv is the whole environment of a restore program: nothing of
// drill's own (no DRILL_* variable, no credentials), no password or
// service file, a statement timeout of what the drill has left.
func (r restoreCmd) toolEnv(ctx context.Context) []string {
	timeout := 24 * time.Hour
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Second)
	}
	return append(baseEnv(r.home), "PGAPPNAME=drill",
		// Files that do not exist: libpq reads no password or service file
		// (and, unlike /dev/null, does not warn that it is not a plain file).
		"PGPASSFILE="+filepath.Join(r.home, ".no-pgpass"), "PGSERVICEFILE="+filepath.Join(r.home, ".no-pg_service.conf"),
		fmt.Sprintf("PGOPTIONS=-c statement_timeout=%d", timeout.Milliseconds()))
}

// baseEnv is the environment of every program drill starts as another OS
// user or for a cluster: a fixed PATH, locale and time zone, and home.
func baseEnv(home string) []string {
	return []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + home, "LC_ALL=C", "PGTZ=UTC"}
}

// output runs a program as runAs and returns its standard output.
func (r restoreCmd) output(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Dir = r.toolEnv(ctx), r.home
	r.runAs.apply(cmd)
	attach(cmd, true)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w: %s", filepath.Base(name), err, tail([]byte(stderr.String()), 1000))
	}
	return string(out), nil
}

// writeFile writes a new file the programs (as runAs) can read and not
// change, in a directory that is drill's own.
func (r restoreCmd) writeFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// exec runs a restore program, turning its verbose output into progress
// and its errors into the returned error.
func (r restoreCmd) exec(ctx context.Context, cmd *exec.Cmd, stdin io.Reader, plain bool) (*restoreOutput, error) {
	cmd.Env, cmd.Dir = r.toolEnv(ctx), r.home
	r.runAs.apply(cmd)
	attach(cmd, true)
	cmd.Stdin = stdin
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	// A plain dump fed to psql, or an archive to pg_restore, is read in
	// another goroutine by exec; WaitDelay keeps a cancelled restore from
	// hanging on it.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	out := restoreOutput{plain: plain, items: r.items, start: time.Now()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); out.read(stderr, r.progress, r.log) }()
	wg.Wait()
	err = cmd.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("restore failed (%s): %s", err, out.summary())
	}
	return &out, nil
}

// restoreOutput keeps the error lines and the last lines of a restore
// program's output, and counts the tables whose data pg_restore loaded.
type restoreOutput struct {
	items, done int       // TOC items to restore, and those pg_restore has begun
	start       time.Time // for the ETA
	plain       bool      // psql reading a script that starts with drill's \restrict line
	errors      []string
	nerr        int
	last        []string
	tableData   int
}

func (o *restoreOutput) read(r io.Reader, progress drills.Progress, log *restoreLog) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var lastSaid time.Time
	for sc.Scan() {
		line := printable(sc.Text())
		if o.plain {
			line = backupLine(line)
		}
		log.add(line)
		switch {
		case strings.Contains(line, "error:") || strings.Contains(line, "ERROR:") || strings.Contains(line, "FATAL:"):
			o.nerr++
			if len(o.errors) < 5 {
				o.errors = append(o.errors, line)
			}
		case strings.Contains(line, "processing data for table"), strings.Contains(line, "creating INDEX"):
			if strings.Contains(line, "processing data for table") {
				o.tableData++
			}
			if time.Since(lastSaid) > 500*time.Millisecond {
				progress.Say(strings.TrimPrefix(line, "pg_restore: ") + o.eta())
				lastSaid = time.Now()
			}
		}
		if strings.HasPrefix(line, "pg_restore: creating ") || strings.HasPrefix(line, "pg_restore: processing data for table") {
			o.done++
		}
		o.last = append(o.last, line)
		if len(o.last) > 5 {
			o.last = o.last[1:]
		}
	}
}

// printable replaces control characters (a backup's error text may hold
// terminal escapes) with '?'.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r >= 0x7f && r < 0xa0 {
			return '?'
		}
		return r
	}, s)
}

var psqlLine = regexp.MustCompile(`^psql:<stdin>:(\d+): `)

// backupLine turns psql's "psql:<stdin>:N: " into "backup line N-1: ":
// the script psql reads is the backup with one line before it.
func backupLine(line string) string {
	m := psqlLine.FindStringSubmatchIndex(line)
	if m == nil {
		return line
	}
	n, _ := strconv.Atoi(line[m[2]:m[3]])
	return fmt.Sprintf("backup line %d: %s", n-1, line[m[1]:])
}

// eta says how far pg_restore is through the table of contents, and how
// long the rest may take at the rate so far.
func (o *restoreOutput) eta() string {
	if o.items <= 0 || o.done <= 0 {
		return ""
	}
	done := min(o.done, o.items)
	s := fmt.Sprintf(" — item %d of %d (%d%%)", done, o.items, done*100/o.items)
	if elapsed := time.Since(o.start); done < o.items && elapsed > 2*time.Second {
		left := time.Duration(float64(elapsed) * float64(o.items-done) / float64(done))
		s += ", about " + drills.HumanDuration(left.Round(time.Second)) + " left"
	}
	return s
}

func (o *restoreOutput) summary() string {
	if len(o.errors) == 0 {
		return redact(strings.Join(o.last, "; "))
	}
	s := redact(strings.Join(o.errors, "; "))
	if o.nerr > len(o.errors) {
		s += fmt.Sprintf("; and %d more errors", o.nerr-len(o.errors))
	}
	return s
}
