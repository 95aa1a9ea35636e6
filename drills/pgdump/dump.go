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
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	stopProgress := o.reportProgress(&wrote, &done, len(rels))
	defer stopProgress()

	roots := make([]verify.Table, 0, len(rels))
	for _, r := range rels {
		if r.Parent == 0 {
			roots = append(roots, r.Table)
		}
	}
	var measured []verify.Measure
	var measureErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		measured, measureErr = verify.MeasureTables(ctx, txs, roots, func(verify.Measure) { done.Add(1) })
		if measureErr != nil {
			cancel()
		}
	}()
	out, err := o.runPgDump(ctx, conninfo, password, snap.id, sk, &wrote)
	if err != nil {
		cancel()
		wg.Wait()
		return nil, err
	}
	wg.Wait()
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
	res := &DumpResult{Out: o.Out, Fingerprint: o.Out + verify.FingerprintSuffix, Facts: fp, Tables: len(fp.Tables),
		Seconds: time.Since(start).Seconds()}
	for _, t := range fp.Tables {
		res.Rows += t.Rows
	}
	return res, nil
}

// refusedArgs are pg_dump options drill sets itself.
var refusedArgs = []string{"f", "F", "d", "h", "p", "U", "j", "-file", "-format", "-dbname", "-host", "-port", "-username", "-jobs", "-snapshot"}

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
	for _, a := range o.Args {
		name, ok := strings.CutPrefix(a, "-")
		if !ok {
			continue
		}
		for _, r := range refusedArgs {
			if name == r || strings.HasPrefix(name, r+"=") || len(r) == 1 && strings.HasPrefix(name, r) {
				return fmt.Errorf("%w: pg_dump argument %s is set by drill dump (use --out, --format, --jobs and the DATABASE_URL)", ErrDumpUsage, a)
			}
		}
	}
	if o.Jobs <= 0 {
		o.Jobs = 1
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
	client, err := newS3Client(ctx, o.Region, o.Endpoint, o.Out)
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

// fingerprint keeps the measured tables the dump holds, measures
// partitions dumped without their parent, and marks tables whose rows the
// dump does not hold.
func (o *DumpOptions) fingerprint(ctx context.Context, snap *snapshot, rels []verify.Relation, out *dumpOutput, measured []verify.Measure, txs []pgx.Tx) (*verify.Fingerprint, error) {
	c := out.contents
	byOID := map[uint32]verify.Relation{}
	for _, r := range rels {
		byOID[r.OID] = r
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
	tops := map[uint32]bool{}
	withData := map[uint32]bool{}
	for _, r := range rels {
		if !in(r) {
			continue
		}
		t := top(r)
		tops[t.OID] = true
		if c.hasData(r.OID, r.Table) {
			withData[t.OID] = true
		}
	}
	results := map[verify.Table]verify.Measure{}
	for _, m := range measured {
		results[m.Table] = m
	}
	var extra []verify.Table
	for _, r := range rels {
		if _, ok := results[r.Table]; tops[r.OID] && !ok {
			extra = append(extra, r.Table)
		}
	}
	if len(extra) > 0 {
		more, err := verify.MeasureTables(ctx, txs, extra, nil)
		if err != nil {
			return nil, err
		}
		for _, m := range more {
			results[m.Table] = m
		}
	}
	fp := &verify.Fingerprint{Version: verify.FingerprintVersion, Database: snap.database, ServerVersion: snap.serverVersion,
		SnapshotTakenAt: snap.takenAt.UTC(), Dump: verify.DumpFacts{Format: o.Format, SHA256: out.sha256, SizeBytes: out.size},
		Partitions: verify.PartitionsAsWhole, DrillVer: o.DrillVersion, Tables: []verify.TableFingerprint{}}
	schemas := map[string]string{}
	for _, r := range rels {
		if !tops[r.OID] {
			continue
		}
		m := results[r.Table]
		if m.Err != nil {
			return nil, fmt.Errorf("fingerprint %s: %w", r.Table, m.Err)
		}
		t := verify.TableFingerprint{Name: r.Table.String(), Rows: m.Sum.Rows, Checksum: m.Sum.Checksum, SchemaSHA256: m.SchemaSHA256}
		if !withData[r.OID] {
			t.Rows, t.Checksum, t.DataExcluded = 0, verify.EmptyChecksum, true
		}
		fp.Tables = append(fp.Tables, t)
		schemas[t.Name] = t.SchemaSHA256
	}
	fp.SchemaSHA256 = verify.DatabaseSchemaDigest(schemas)
	return fp, nil
}
