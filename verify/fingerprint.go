package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
)

// FingerprintSuffix is appended to a backup's name to name its fingerprint.
const FingerprintSuffix = ".fingerprint.json"

// FingerprintVersion is the version of the fingerprint file this drill writes and reads.
const FingerprintVersion = 1

// MaxFingerprintBytes bounds the fingerprint file drill reads: a backup
// location is untrusted input.
const MaxFingerprintBytes = 64 << 20

// Fingerprint is what `drill dump` records of a database in the snapshot
// it dumped: every table's row count and checksum, and a digest of the
// schema. It is written next to the backup as NAME.fingerprint.json.
type Fingerprint struct {
	Version         int       `json:"version"`
	Database        string    `json:"database"`
	ServerVersion   string    `json:"server_version"`
	SnapshotTakenAt time.Time `json:"snapshot_taken_at"`
	Dump            DumpFacts `json:"dump"`
	SchemaSHA256    string    `json:"schema_sha256"`
	// Partitions says how partitioned tables are fingerprinted.
	Partitions string             `json:"partitions"`
	DrillVer   string             `json:"drill_version,omitempty"`
	Tables     []TableFingerprint `json:"tables"`
}

// PartitionsAsWhole is the value of Fingerprint.Partitions: a partitioned
// table is one entry holding the rows of all its partitions.
const PartitionsAsWhole = "as a whole: a partitioned table's entry covers all its partitions"

// DumpFacts identifies the dump a fingerprint belongs to.
type DumpFacts struct {
	Format    string `json:"format"`
	SHA256    string `json:"sha256"`
	SizeBytes int64  `json:"size_bytes"`
}

// TableFingerprint is one table of a fingerprint.
type TableFingerprint struct {
	Name     string `json:"name"`
	Rows     int64  `json:"rows"`
	Checksum string `json:"checksum"`
	// SchemaSHA256 is the digest of the table's columns, constraints and
	// indexes; the file's schema_sha256 combines them.
	SchemaSHA256 string `json:"schema_sha256"`
	// DataExcluded: the dump holds the table but not its rows
	// (pg_dump --exclude-table-data); Rows is then 0.
	DataExcluded bool `json:"data_excluded,omitempty"`
}

var (
	hex16 = regexp.MustCompile(`^[0-9a-f]{16}$`)
	hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ReadFingerprint parses and checks a fingerprint file: every field an
// untrusted file could get wrong is checked here, so the rest of drill can
// rely on it.
func ReadFingerprint(r io.Reader) (*Fingerprint, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFingerprintBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFingerprintBytes {
		return nil, fmt.Errorf("fingerprint: larger than %d MiB", MaxFingerprintBytes>>20)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var f Fingerprint
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("fingerprint: not valid JSON: %w", err)
	}
	if f.Version != FingerprintVersion {
		return nil, fmt.Errorf("fingerprint: version %d, this drill reads version %d", f.Version, FingerprintVersion)
	}
	for _, s := range []string{f.Database, f.ServerVersion, f.Dump.Format, f.DrillVer, f.Partitions} {
		if len(s) > 300 || strings.IndexFunc(s, unicode.IsControl) >= 0 {
			return nil, fmt.Errorf("fingerprint: %q is not a plain line of text", s)
		}
	}
	if f.SnapshotTakenAt.IsZero() {
		return nil, errors.New("fingerprint: snapshot_taken_at is missing")
	}
	if !hex64.MatchString(f.Dump.SHA256) || !hex64.MatchString(f.SchemaSHA256) {
		return nil, errors.New("fingerprint: dump.sha256 and schema_sha256 must be 64 lower-case hex digits")
	}
	seen := make(map[string]bool, len(f.Tables))
	for i, t := range f.Tables {
		if _, err := splitQualified(t.Name); err != nil || len(t.Name) > 300 {
			return nil, fmt.Errorf("fingerprint: tables[%d]: name %q is not schema.table", i, t.Name)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("fingerprint: tables[%d]: %s is listed twice", i, t.Name)
		}
		seen[t.Name] = true
		if t.Rows < 0 || !hex16.MatchString(t.Checksum) || !hex64.MatchString(t.SchemaSHA256) {
			return nil, fmt.Errorf("fingerprint: tables[%d] (%s): rows must be >= 0, checksum 16 hex digits and schema_sha256 64", i, t.Name)
		}
	}
	return &f, nil
}

// Measure is what MeasureTables finds of one table.
type Measure struct {
	Table        Table
	Sum          TableSum
	SchemaSHA256 string
	Err          error
}

// MeasureTables counts and hashes tables (SumTable) and, withSchema,
// describes them (SchemaDigest) over the transactions txs, one goroutine
// per transaction, the largest tables first. Every transaction must see
// the same data (a shared snapshot, or a database nobody writes to). done,
// when set, is called after each table. The result is in the order of
// tables. Errors are per table; ctx's error ends the work.
func MeasureTables(ctx context.Context, txs []pgx.Tx, tables []Table, withSchema bool, done func(Measure)) ([]Measure, error) {
	if len(txs) == 0 {
		return nil, errors.New("measure: no connection")
	}
	out := make([]Measure, len(tables))
	order, err := largestFirst(ctx, txs[0], tables)
	if err != nil {
		return nil, err
	}
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, tx := range txs {
		wg.Add(1)
		go func(tx pgx.Tx) {
			defer wg.Done()
			for i := range next {
				m := measure(ctx, tx, tables[i], withSchema)
				out[i] = m
				if done != nil {
					mu.Lock()
					done(m)
					mu.Unlock()
				}
			}
		}(tx)
	}
feed:
	for _, i := range order {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return out, ctx.Err()
}

// measure runs in a savepoint, so that an error on one table (say, a
// permission) leaves the transaction usable for the next.
func measure(ctx context.Context, tx pgx.Tx, t Table, withSchema bool) Measure {
	m := Measure{Table: t}
	if _, m.Err = tx.Exec(ctx, "savepoint drill_measure"); m.Err != nil {
		return m
	}
	m.Sum, m.Err = SumTable(ctx, tx, t)
	if m.Err == nil && withSchema {
		m.SchemaSHA256, m.Err = SchemaDigest(ctx, tx, t)
	}
	if m.Err != nil {
		_, _ = tx.Exec(ctx, "rollback to savepoint drill_measure")
		return m
	}
	_, m.Err = tx.Exec(ctx, "release savepoint drill_measure")
	return m
}

// largestFirst orders tables by their size on disk, largest first, so
// that the longest table does not start last.
func largestFirst(ctx context.Context, tx pgx.Tx, tables []Table) ([]int, error) {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.Quoted()
	}
	rows, err := tx.Query(ctx, `select coalesce((select sum(pg_catalog.pg_relation_size(p.relid))
		from (`+treeSQL("n.name")+`) p), 0)::int8
		from unnest($1::text[]) with ordinality as n(name, i) order by n.i`, names)
	if err != nil {
		return nil, err
	}
	sizes, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	order := make([]int, len(tables))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return sizes[order[a]] > sizes[order[b]] })
	return order, nil
}

// SchemaDigests describes tables (SchemaDigest) over the transactions
// txs side by side; the digests are in the order of tables.
func SchemaDigests(ctx context.Context, txs []pgx.Tx, tables []Table) ([]string, error) {
	out := make([]string, len(tables))
	next := make(chan int)
	errs := make([]error, len(txs))
	var wg sync.WaitGroup
	for w, tx := range txs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if errs[w] != nil {
					continue
				}
				var err error
				if out[i], err = SchemaDigest(ctx, tx, tables[i]); err != nil {
					errs[w] = fmt.Errorf("schema of %s: %w", tables[i], err)
				}
			}
		}()
	}
	for i := range tables {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, errors.Join(errs...)
}
