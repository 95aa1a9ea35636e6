package pgdump

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"drill/drills"
	"drill/verify"

	"github.com/jackc/pgx/v5"
)

// ErrDumpUsage marks a dump that was asked for wrongly (exit code 2).
var ErrDumpUsage = errors.New("usage")

// DumpOptions configures Dump.
type DumpOptions struct {
	// URL is the database to dump; it may hold a password, which is never
	// logged, shown or passed on a command line.
	URL string
	// Out is a path or s3://bucket/key.
	Out string
	// Format is custom (default), directory, tar or plain.
	Format string
	// Jobs is the number of connections that fingerprint tables (and, for
	// the directory format, pg_dump's --jobs).
	Jobs int
	// Args are further pg_dump arguments (table selection, compression…).
	Args []string
	// PGDump and PGRestore are the programs (default: on $PATH).
	PGDump, PGRestore string
	// Region and Endpoint override the AWS environment for S3.
	Region, Endpoint string
	// Timeout bounds every statement (default 24h).
	Timeout time.Duration
	// DrillVersion is recorded in the fingerprint.
	DrillVersion string
	// Progress, when set, is called about twice a second.
	Progress func(DumpProgress)
	// Notice, when set, is told what Dump did besides the dump (removing
	// what an interrupted dump to the same path left behind).
	Notice func(string)
}

// DumpProgress is how far a dump has come.
type DumpProgress struct {
	Bytes       int64
	TablesDone  int
	TablesTotal int
}

// DumpResult is what Dump wrote.
type DumpResult struct {
	Out         string              `json:"out"`
	Fingerprint string              `json:"fingerprint"`
	Facts       *verify.Fingerprint `json:"-"`
	Tables      int                 `json:"tables"`
	Rows        int64               `json:"rows"`
	Seconds     float64             `json:"seconds"`
	// RemovedPartial are the temporary files of earlier dumps to the
	// same path that were killed before they finished, removed.
	RemovedPartial []string `json:"removed_partial,omitempty"`
}

// Dump runs pg_dump on a read-only snapshot of the database and, in that
// same snapshot, fingerprints every table the dump holds. It writes the
// dump and NAME.fingerprint.json; a dump that fails leaves neither.
func Dump(ctx context.Context, o DumpOptions) (*DumpResult, error) {
	start := time.Now()
	if err := o.check(); err != nil {
		return nil, err
	}
	conninfo, password, err := splitPassword(o.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDumpUsage, err)
	}
	exporter, err := o.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer exporter.Close(context.WithoutCancel(ctx))
	snap, err := exportSnapshot(ctx, exporter)
	if err != nil {
		return nil, err
	}
	rels, err := verify.Relations(ctx, snap.tx)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	txs, closeAll, err := o.importers(ctx, snap.id)
	if err != nil {
		return nil, err
	}
	defer closeAll()

	stale := o.removeLeftovers()
	sk, err := o.sink(ctx)
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			sk.abort(ctx)
		}
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var done atomic.Int64
	var wrote atomic.Int64
	stopProgress := o.reportProgress(&wrote, &done, countLeaves(rels))
	defer stopProgress()

	waitMeasured := measureLeaves(ctx, cancel, txs, rels, &done)
	out, err := o.runPgDump(ctx, conninfo, password, snap.id, sk, &wrote)
	if err != nil {
		cancel()
		if _, measureErr := waitMeasured(); measureErr != nil && !errors.Is(measureErr, context.Canceled) {
			// the fingerprint failed first, and stopped pg_dump
			return nil, fmt.Errorf("fingerprint: %w", measureErr)
		}
		return nil, err
	}
	measured, measureErr := waitMeasured()
	if measureErr != nil {
		return nil, fmt.Errorf("fingerprint: %w", measureErr)
	}
	fp, err := o.fingerprint(ctx, snap, rels, out, measured, txs)
	if err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(fp, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := sk.commit(ctx, append(data, '\n')); err != nil {
		return nil, err
	}
	committed = true
	return o.result(fp, stale, start), nil
}

// result is what Dump reports of the dump it wrote, and of the partial
// dumps it removed, start being when it began.
func (o *DumpOptions) result(fp *verify.Fingerprint, stale []string, start time.Time) *DumpResult {
	res := &DumpResult{Out: o.Out, Fingerprint: o.Out + verify.FingerprintSuffix, Facts: fp, Tables: len(fp.Tables), RemovedPartial: stale,
		Seconds: time.Since(start).Seconds()}
	for _, t := range fp.Tables {
		res.Rows += t.Rows
	}
	return res
}

// removeLeftovers removes what interrupted dumps to the same path left
// behind (nothing on S3), tells o.Notice, and returns what it removed.
func (o *DumpOptions) removeLeftovers() []string {
	if strings.HasPrefix(o.Out, "s3://") {
		return nil
	}
	stale := removeStale(filepath.Clean(o.Out))
	for _, tmp := range stale {
		if o.Notice != nil {
			o.Notice(fmt.Sprintf("removed %s: what an interrupted drill dump to %s left behind", tmp, o.Out))
		}
	}
	return stale
}

// measureLeaves counts and hashes, over txs and while pg_dump runs, every
// table with rows of its own (plain tables, partitions, inheritance
// children) on its own; what the dump holds decides, after, how they add
// up. A failure cancels the dump. The function it returns waits for the
// measures.
func measureLeaves(ctx context.Context, cancel context.CancelFunc, txs []pgx.Tx, rels []verify.Relation, done *atomic.Int64) func() ([]verify.Measure, error) {
	var leaves []verify.Table
	for _, r := range rels {
		if !r.Partitioned {
			leaves = append(leaves, r.Table)
		}
	}
	var measured []verify.Measure
	var measureErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		measured, measureErr = verify.MeasureTables(ctx, txs, leaves, false, func(verify.Measure) { done.Add(1) })
		if measureErr != nil {
			cancel()
		}
	}()
	return func() ([]verify.Measure, error) {
		wg.Wait()
		return measured, measureErr
	}
}

// pg_dump's options that drill sets itself, and those that take a value
// (pg_dump 15–17), for reading PG_DUMP_ARGS as pg_dump's getopt does:
// short options bundle (-vf FILE), long ones abbreviate (--fil=FILE).
const (
	refusedShort = "fFjdhpU"
	valueShort   = "fFjZnNtTdhpUeES"
)

var (
	refusedLong = []string{"file", "format", "jobs", "dbname", "host", "port", "username", "snapshot"}
	valueLong   = []string{"file", "format", "jobs", "compress", "lock-wait-timeout", "encoding", "schema", "exclude-schema",
		"table", "exclude-table", "superuser", "dbname", "host", "port", "username", "role", "exclude-table-data",
		"extra-float-digits", "include-foreign-data", "rows-per-insert", "section", "snapshot", "extension", "exclude-extension", "filter"}
)

// checkDumpArgs refuses PG_DUMP_ARGS that would set what drill sets, in
// any spelling pg_dump accepts, and a database name (pg_dump's only
// positional argument).
func checkDumpArgs(args []string) error {
	refuse := func(a string) error {
		return fmt.Errorf("%w: pg_dump argument %s is set by drill dump (use --out, --format, --jobs and the DATABASE_URL)", ErrDumpUsage, a)
	}
	value := false
	for _, a := range args {
		switch {
		case value:
			value = false
		case strings.HasPrefix(a, "--") && len(a) > 2:
			name, _, hasValue := strings.Cut(a[2:], "=")
			takes := 0
			for _, r := range refusedLong {
				if strings.HasPrefix(r, name) {
					return refuse(a)
				}
			}
			for _, v := range valueLong {
				if strings.HasPrefix(v, name) {
					takes++
				}
			}
			value = takes > 0 && !hasValue
		case strings.HasPrefix(a, "-") && len(a) > 1 && a != "--":
			for i, ch := range a[1:] {
				if strings.ContainsRune(refusedShort, ch) {
					return refuse(a)
				}
				if strings.ContainsRune(valueShort, ch) {
					value = i == len(a)-2 // the value is the next argument
					break
				}
			}
		default:
			return fmt.Errorf("%w: pg_dump argument %q is not an option: the database is the DATABASE_URL", ErrDumpUsage, a)
		}
	}
	return nil
}

func (o *DumpOptions) check() error {
	switch o.Format {
	case "":
		o.Format = drills.FormatCustom
	case drills.FormatCustom, drills.FormatDirectory, drills.FormatTar, drills.FormatPlain:
	default:
		return fmt.Errorf("%w: --format %q: want custom, directory, tar or plain", ErrDumpUsage, o.Format)
	}
	if o.Out == "" {
		return fmt.Errorf("%w: --out is required (a path or s3://bucket/key)", ErrDumpUsage)
	}
	if strings.HasSuffix(o.Out, verify.FingerprintSuffix) {
		return fmt.Errorf("%w: --out %s: that name is reserved for fingerprints", ErrDumpUsage, o.Out)
	}
	if strings.HasPrefix(o.Out, "s3://") {
		u, err := url.Parse(o.Out)
		if err != nil || u.Host == "" || strings.Trim(u.Path, "/") == "" || strings.HasSuffix(u.Path, "/") {
			return fmt.Errorf("%w: --out %s: want s3://bucket/key", ErrDumpUsage, o.Out)
		}
		if o.Format == drills.FormatDirectory {
			return fmt.Errorf("%w: --format directory writes a directory, which cannot go to S3: use custom or tar", ErrDumpUsage)
		}
	}
	if err := checkDumpArgs(o.Args); err != nil {
		return err
	}
	if o.Jobs <= 0 {
		return fmt.Errorf("%w: --jobs %d: want 1 or more", ErrDumpUsage, o.Jobs)
	}
	if base := path.Base(o.Out); strings.HasPrefix(base, ".") {
		return fmt.Errorf("%w: --out %s: a hidden name is never taken for a backup by a drill", ErrDumpUsage, o.Out)
	}
	if o.Timeout <= 0 {
		o.Timeout = 24 * time.Hour
	}
	if o.PGDump == "" {
		o.PGDump = "pg_dump"
	}
	if o.PGRestore == "" {
		o.PGRestore = "pg_restore"
	}
	return nil
}

// connect opens a read-only connection with the statement timeout set.
func (o *DumpOptions) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(o.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: the database URL is invalid", ErrDumpUsage)
	}
	cfg.RuntimeParams["application_name"] = "drill dump"
	cfg.RuntimeParams["default_transaction_read_only"] = "on"
	cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(o.Timeout.Milliseconds(), 10)
	cfg.RuntimeParams["idle_in_transaction_session_timeout"] = "0" // the snapshot is held while pg_dump runs
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s on %s: %w", cfg.Database, cfg.Host, verify.RedactConnErr(err))
	}
	return conn, nil
}

type snapshot struct {
	tx                      pgx.Tx
	id                      string
	takenAt                 time.Time
	database, serverVersion string
}

var snapshotID = regexp.MustCompile(`^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$`)

func exportSnapshot(ctx context.Context, conn *pgx.Conn) (*snapshot, error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	s := &snapshot{tx: tx}
	err = tx.QueryRow(ctx, `select pg_catalog.pg_export_snapshot(), pg_catalog.now(), pg_catalog.current_database(),
		pg_catalog.current_setting('server_version')`).Scan(&s.id, &s.takenAt, &s.database, &s.serverVersion)
	if err != nil {
		return nil, fmt.Errorf("export a snapshot: %w", err)
	}
	if !snapshotID.MatchString(s.id) {
		return nil, fmt.Errorf("export a snapshot: unexpected snapshot id %q", s.id)
	}
	return s, nil
}

// importers opens Jobs connections, each in a transaction on the snapshot.
func (o *DumpOptions) importers(ctx context.Context, id string) ([]pgx.Tx, func(), error) {
	var conns []*pgx.Conn
	var txs []pgx.Tx
	closeAll := func() {
		for _, c := range conns {
			c.Close(context.WithoutCancel(ctx))
		}
	}
	for range o.Jobs {
		c, err := o.connect(ctx)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		conns = append(conns, c)
		tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err == nil {
			_, err = tx.Exec(ctx, "set transaction snapshot '"+id+"'")
		}
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("import the snapshot: %w", err)
		}
		txs = append(txs, tx)
	}
	return txs, closeAll, nil
}

func (o *DumpOptions) sink(ctx context.Context) (sink, error) {
	if !strings.HasPrefix(o.Out, "s3://") {
		if o.Format == drills.FormatDirectory {
			return newDirSink(o.Out)
		}
		return newFileSink(o.Out)
	}
	u, _ := url.Parse(o.Out)
	client, err := NewS3Client(ctx, o.Region, o.Endpoint, o.Out)
	if err != nil {
		return nil, err
	}
	return newS3Sink(ctx, client, u.Host, strings.TrimPrefix(u.Path, "/"))
}

func (o *DumpOptions) reportProgress(wrote, done *atomic.Int64, total int) func() {
	if o.Progress == nil {
		return func() {}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				o.Progress(DumpProgress{Bytes: wrote.Load(), TablesDone: int(done.Load()), TablesTotal: total})
			}
		}
	}()
	return func() { close(stop); wg.Wait() }
}

// dumpOutput is what was learnt from pg_dump's output as it passed.
type dumpOutput struct {
	sha256   string
	size     int64
	contents *contents
}

// prefixMax is how much of a custom or tar archive is kept to read its
// table of contents from (it comes first).
const prefixMax = 64 << 20

func (o *DumpOptions) runPgDump(ctx context.Context, conninfo, password, snapshotID string, sk sink, wrote *atomic.Int64) (*dumpOutput, error) {
	args := []string{"--snapshot=" + snapshotID, "--format=" + o.Format, "--no-password"}
	ds, isDir := sk.(*dirSink)
	if isDir {
		args = append(args, "--file="+ds.tmp, "--jobs="+strconv.Itoa(o.Jobs))
	}
	args = append(args, o.Args...)
	args = append(args, "--dbname="+conninfo)
	cmd := exec.CommandContext(ctx, o.PGDump, args...)
	// pg_dump dies with drill, however drill ends (its workers, in its
	// process group, are killed with it when the dump is cancelled; after
	// drill is killed outright they finish the table they are on, which
	// removeStale waits for). Pdeathsig follows the thread that started
	// pg_dump: nothing in drill locks a goroutine to its thread.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Env = append(os.Environ(), "PGOPTIONS="+strings.TrimSpace(os.Getenv("PGOPTIONS")+" -c default_transaction_read_only=on"))
	if password != "" {
		cmd.Env = append(cmd.Env, "PGPASSWORD="+password)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 16 << 10}
	h := sha256.New()
	var prefix bytes.Buffer
	scanner := &plainScanner{c: newContents()}
	var w io.Writer = io.MultiWriter(h, &counter{n: wrote}, sk)
	switch o.Format {
	case drills.FormatPlain:
		w = io.MultiWriter(w, scanner)
	case drills.FormatCustom, drills.FormatTar:
		w = io.MultiWriter(w, &limitedBuffer{buf: &prefix, max: prefixMax})
	}
	if !isDir {
		cmd.Stdout = w
	}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("pg_dump: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	out := &dumpOutput{size: wrote.Load(), sha256: hex.EncodeToString(h.Sum(nil))}
	var err error
	switch o.Format {
	case drills.FormatPlain:
		out.contents = scanner.c
	case drills.FormatDirectory:
		if out.sha256, out.size, err = drills.DigestPath(ctx, ds.tmp); err != nil {
			return nil, err
		}
		wrote.Store(out.size)
		out.contents, err = listContents(ctx, o.PGRestore, ds.tmp)
	default:
		out.contents, err = prefixContents(ctx, o.PGRestore, o.Format, prefix.Bytes())
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

type counter struct{ n *atomic.Int64 }

func (c *counter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

func countLeaves(rels []verify.Relation) int {
	n := 0
	for _, r := range rels {
		if !r.Partitioned {
			n++
		}
	}
	return n
}

// fingerprint lists the tables the dump holds as a restore recreates
// them: a partitioned table (or a partition dumped without its parent)
// as one entry whose rows and checksum add up those of its partitions
// whose rows the dump holds; any other table with its own rows. A table
// the dump creates without rows is marked data_excluded.
func (o *DumpOptions) fingerprint(ctx context.Context, snap *snapshot, rels []verify.Relation, out *dumpOutput, measured []verify.Measure, txs []pgx.Tx) (*verify.Fingerprint, error) {
	c := out.contents
	byOID := map[uint32]verify.Relation{}
	for _, r := range rels {
		byOID[r.OID] = r
	}
	sums := map[verify.Table]verify.Measure{}
	for _, m := range measured {
		if m.Err != nil {
			return nil, fmt.Errorf("fingerprint %s: %w", m.Table, m.Err)
		}
		sums[m.Table] = m
	}
	in := func(r verify.Relation) bool { return c.has(r.OID, r.Table) || c.hasData(r.OID, r.Table) }
	// top is the relation a dumped relation's rows are counted under: its
	// highest ancestor in the dump.
	top := func(r verify.Relation) verify.Relation {
		for r.Parent != 0 {
			p, ok := byOID[r.Parent]
			if !ok || !in(p) {
				break
			}
			r = p
		}
		return r
	}
	type entry struct {
		rel      verify.Relation
		rows     int64
		checksum []string
		data     bool
	}
	entries := map[uint32]*entry{}
	var order []uint32
	for _, r := range rels {
		if !in(r) {
			continue
		}
		t := top(r)
		e := entries[t.OID]
		if e == nil {
			e = &entry{rel: t}
			entries[t.OID] = e
			order = append(order, t.OID)
		}
		if !r.Partitioned && c.hasData(r.OID, r.Table) {
			m := sums[r.Table]
			e.rows += m.Sum.Rows
			e.checksum = append(e.checksum, m.Sum.Checksum)
			e.data = true
		}
	}
	tops := make([]verify.Table, 0, len(order))
	for _, oid := range order {
		tops = append(tops, entries[oid].rel.Table)
	}
	schemas, err := verify.SchemaDigests(ctx, txs, tops)
	if err != nil {
		return nil, err
	}
	fp := &verify.Fingerprint{Version: verify.FingerprintVersion, Database: snap.database, ServerVersion: snap.serverVersion,
		SnapshotTakenAt: snap.takenAt.UTC(), Dump: verify.DumpFacts{Format: o.Format, SHA256: out.sha256, SizeBytes: out.size},
		Partitions: verify.PartitionsAsWhole, DrillVer: o.DrillVersion, Tables: []verify.TableFingerprint{}}
	byName := map[string]string{}
	for i, oid := range order {
		e := entries[oid]
		sum, err := verify.AddChecksums(e.checksum...)
		if err != nil {
			return nil, err
		}
		t := verify.TableFingerprint{Name: e.rel.Table.String(), Rows: e.rows, Checksum: sum, SchemaSHA256: schemas[i], DataExcluded: !e.data}
		fp.Tables = append(fp.Tables, t)
		byName[t.Name] = t.SchemaSHA256
	}
	fp.SchemaSHA256 = verify.DatabaseSchemaDigest(byName)
	return fp, nil
}
