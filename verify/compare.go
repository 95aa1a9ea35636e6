package verify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
)

// compareBucket is how many rows of the restored table one key range
// holds: ranges whose sums differ are compared row by row.
const compareBucket = 10000

// maxNamedDifferences is how many differing keys a compare check names.
const maxNamedDifferences = 20

// SourceDescription names the database a compare check reads, without
// user or password: host:port/database. It is "" when url cannot be
// parsed (Validate says so).
//
// It is "" for no URL, and for one that does not parse or that reads as a
// host holding '@' or a database name holding '@' or '/': what a password with an
// unencoded '/' makes of a URL (postgres://u:pa/ss@host/db has the host
// "u:pa" and the database "ss@host/db"), which would carry the password
// into the record.
func SourceDescription(url string) string {
	if url == "" {
		return ""
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil || strings.Contains(cfg.Host, "@") || strings.ContainsAny(cfg.Database, "@/") {
		return ""
	}
	return fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
}

// connectSource opens the compare check's connection to the live
// database: read-only sessions and transactions, a statement timeout, the
// settings pinned as for checksums. The URL holds a password: neither it
// nor pgx's connect error (which repeats it) is ever returned.
func connectSource(ctx context.Context, url string, opts Opts) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, errors.New("compare: source_url is not a valid PostgreSQL connection string")
	}
	conn, err := connectPinned(ctx, cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("compare: connect to the source %s: %w", SourceDescription(url), RedactConnErr(err))
	}
	return conn, nil
}

// compareSide is one database of a compare check, inside its read-only
// repeatable-read transaction.
type compareSide struct {
	tx    pgx.Tx
	from  string // ONLY "schema"."table" t (or the partitioned table)
	where string // "" or " and (…)"
}

// compareSpec is what both sides' queries share.
type compareSpec struct {
	column  string // the key column's name
	key     string // the key column, quoted, of t
	keyType string // its type, as format_type renders it
	hash    string // the row hash expression over t
}

type bucketSum struct {
	rows int64
	sum  string
}

// rangeStarts cuts the restored table's keys into ranges of about
// compareBucket rows: the smallest key of each range after the first.
// Small tables are cut exactly; big ones at the quantiles of a block
// sample, which costs a fraction of a scan.
func rangeStarts(ctx context.Context, side compareSide, spec compareSpec, t Table) ([]string, error) {
	var est float64
	if err := side.tx.QueryRow(ctx, `select coalesce(pg_catalog.sum(c.reltuples) filter (where c.reltuples > 0), 0)::float8 from pg_catalog.pg_class c
		where c.oid = $1::pg_catalog.regclass or c.oid in (select relid from pg_catalog.pg_partition_tree($1::pg_catalog.regclass))`, t.Quoted()).Scan(&est); err != nil {
		return nil, err
	}
	var q string
	if est < 20*compareBucket {
		q = fmt.Sprintf(`select s.k::text as key_text from (select %s as k, pg_catalog.row_number() over (order by %s) - 1 as n from %s where true%s) s
			where n > 0 and n %% %d = 0 order by s.k`, spec.key, spec.key, side.from, side.where, compareBucket)
	} else {
		ranges := est / compareBucket
		pct := min(100, 100*ranges*50/est) // about 50 sampled keys per range
		q = fmt.Sprintf(`select s.k::text as key_text from (select k, pg_catalog.row_number() over (order by k) as n, pg_catalog.count(*) over () as total
			from (select %s as k from %s tablesample system (%g) where true%s) s) s
			where n %% greatest(total / %d, 1) = 0 order by s.k`, spec.key, side.from, pct, side.where, int64(ranges))
	}
	rows, err := side.tx.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var out []string
	for i, k := range keys {
		if i == 0 || k != keys[i-1] {
			out = append(out, k)
		}
	}
	return out, nil
}

// rangeSums returns, per key range, the row count and sum of row hashes
// of one side's rows with keys up to maxKey.
func rangeSums(ctx context.Context, side compareSide, spec compareSpec, mins []string, maxKey string) (map[int]bucketSum, error) {
	// The planner cannot tell that there are few ranges and would sort
	// every row by its range (on disk, for a big table); a hash of the
	// ranges fits in memory. JIT costs more than it saves on one scan. A
	// generic plan of a range's rows, which pgx's statement cache gets
	// after a few runs, scans the whole table: plans are made for the
	// ranges at hand.
	if _, err := side.tx.Exec(ctx, `select pg_catalog.set_config('enable_sort', 'off', true), pg_catalog.set_config('jit', 'off', true),
		pg_catalog.set_config('plan_cache_mode', 'force_custom_plan', true)`); err != nil {
		return nil, err
	}
	rows, err := side.tx.Query(ctx, fmt.Sprintf(`select coalesce(pg_catalog.width_bucket(%s, $1::text[]::%s[]), 0), pg_catalog.count(*), coalesce(pg_catalog.sum(%s), 0)::text
		from %s where %s <= $2::%s%s group by 1`, spec.key, spec.keyType, spec.hash, side.from, spec.key, spec.keyType, side.where), mins, maxKey)
	if err != nil {
		return nil, err
	}
	out := map[int]bucketSum{}
	var i int
	var b bucketSum
	_, err = pgx.ForEachRow(rows, []any{&i, &b.rows, &b.sum}, func() error {
		out[i] = b
		return nil
	})
	return out, err
}

// compareCheck compares the rows of c.Table that existed at backup time
// (key ≤ the restored copy's largest key, and c.Where on both sides) with
// the same rows on a live database: per key range the row count and the
// sum of row hashes, then, for the ranges that differ, row by row.
func compareCheck(ctx context.Context, conn *pgx.Conn, c Check, opts Opts, r *Result) error {
	src, err := connectSource(ctx, c.SourceURL, opts)
	if err != nil {
		return err
	}
	defer src.Close(context.WithoutCancel(ctx))
	rtx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return err
	}
	defer rtx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	stx, err := src.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return fmt.Errorf("compare: source: %w", err)
	}
	defer stx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only

	restored, spec, err := prepareRestoredSide(ctx, rtx, c)
	if err != nil {
		return err
	}
	source, t, err := prepareSourceSide(ctx, stx, c.Table, restored.where)
	if err != nil {
		return fmt.Errorf("compare: source: %w", err)
	}

	var maxKey *string
	if err := rtx.QueryRow(ctx, fmt.Sprintf("select pg_catalog.max(%s)::text from %s where true%s", spec.key, restored.from, restored.where)).Scan(&maxKey); err != nil {
		return err
	}
	if maxKey == nil {
		// Nothing restored: every source row of the table (under where) is missing.
		var n int64
		if err := stx.QueryRow(ctx, fmt.Sprintf("select pg_catalog.count(*) from %s where true%s", source.from, source.where)).Scan(&n); err != nil {
			return fmt.Errorf("compare: source: %w", err)
		}
		r.Actual = fmt.Sprintf("0 rows restored; the source has %d", n)
		r.Passed = n <= c.maxDifferences()
		return nil
	}
	mins, err := rangeStarts(ctx, restored, spec, t)
	if err != nil {
		return err
	}
	cm := &comparison{restored: restored, source: source, spec: spec, mins: mins, maxKey: *maxKey}
	restoredRows, dirty, err := cm.dirtyRanges(ctx)
	if err != nil {
		return err
	}
	// Row by row in the ranges that differ.
	for _, d := range dirty {
		if err := cm.compareRange(ctx, d); err != nil {
			return err
		}
	}
	r.Details = cm.diffs // in key-range order
	r.Actual = cm.actual(restoredRows)
	r.Passed = cm.count <= c.maxDifferences()
	return nil
}

// prepareSourceSide resolves the table in the live database, under the
// same where as the restored copy, and returns it with its side.
func prepareSourceSide(ctx context.Context, tx pgx.Tx, table, where string) (compareSide, Table, error) {
	side := compareSide{tx: tx, where: where}
	t, _, err := resolveTable(ctx, tx, table)
	if err != nil {
		return side, t, err
	}
	if err := pinDigestSettings(ctx, tx); err != nil {
		return side, t, err
	}
	if side.from, err = rowsOf(ctx, tx, t); err != nil {
		return side, t, err
	}
	side.from += " t"
	return side, t, nil
}

// comparison is a compare check under way once the restored copy has
// rows: both sides, the key ranges, and the differences found so far.
// Range 0 holds keys below mins[0], range i ≥ 1 keys from mins[i-1] up
// to mins[i] (the last: up to the restored largest key).
type comparison struct {
	restored, source compareSide
	spec             compareSpec
	mins             []string
	maxKey           string        // the restored copy's largest key
	diffs            []TableResult // the differences named, in key-range order
	count            int64         // every difference, named or not
}

// dirtyRanges sums both sides at once, per key range the row count and
// the sum of row hashes, and returns the rows of the restored copy and
// the ranges whose sums differ.
func (cm *comparison) dirtyRanges(ctx context.Context) (int64, []int, error) {
	var sums [2]map[int]bucketSum
	var errs [2]error
	var wg sync.WaitGroup
	for i, side := range []compareSide{cm.restored, cm.source} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sums[i], errs[i] = rangeSums(ctx, side, cm.spec, cm.mins, cm.maxKey)
		}()
	}
	wg.Wait()
	if errs[0] != nil {
		return 0, nil, errs[0]
	}
	if errs[1] != nil {
		return 0, nil, fmt.Errorf("compare: source: %w", errs[1])
	}
	var restoredRows int64
	var dirty []int
	for i := 0; i <= len(cm.mins); i++ {
		a, b := sums[0][i], sums[1][i]
		restoredRows += a.rows
		if a != b {
			dirty = append(dirty, i)
		}
	}
	return restoredRows, dirty, nil
}

// rangeCond is the condition on the key of range d, and its arguments.
func (cm *comparison) rangeCond(d int) (string, []any) {
	spec := cm.spec
	cond, args := "true", []any{}
	if d > 0 {
		args = append(args, cm.mins[d-1])
		cond += fmt.Sprintf(" and %s >= $%d::%s", spec.key, len(args), spec.keyType)
	}
	if d < len(cm.mins) {
		args = append(args, cm.mins[d])
		cond += fmt.Sprintf(" and %s < $%d::%s", spec.key, len(args), spec.keyType)
	} else {
		args = append(args, cm.maxKey)
		cond += fmt.Sprintf(" and %s <= $%d::%s", spec.key, len(args), spec.keyType)
	}
	return cond, args
}

// compareRange compares the rows of range d one by one and adds what
// differs: rows changed, extra in the restored copy, or missing there.
func (cm *comparison) compareRange(ctx context.Context, d int) error {
	spec := cm.spec
	cond, args := cm.rangeCond(d)
	q := func(side compareSide) string {
		return fmt.Sprintf("select %s::text, %s from %s where %s%s order by %s", spec.key, spec.hash, side.from, cond, side.where, spec.key)
	}
	restoredRows, err := keyHashes(ctx, cm.restored.tx, q(cm.restored), args)
	if err != nil {
		return err
	}
	sourceRows, err := keyHashes(ctx, cm.source.tx, q(cm.source), args)
	if err != nil {
		return fmt.Errorf("compare: source: %w", err)
	}
	var extra, missing []string
	for _, k := range restoredRows.order {
		sh, ok := sourceRows.hash[k]
		switch {
		case !ok:
			extra = append(extra, k)
		case sh != restoredRows.hash[k]:
			cm.add(k, "changed", "differs from the source (changed there since the backup, or restored wrong)")
		}
	}
	for _, k := range sourceRows.order {
		if _, ok := restoredRows.hash[k]; !ok {
			missing = append(missing, k)
		}
	}
	// A row inside where on one side only, but there outside it on the
	// other, changed since the backup: where leaves it out.
	if extra, err = outsideWhere(ctx, cm.source, spec, extra); err != nil {
		return fmt.Errorf("compare: source: %w", err)
	}
	if missing, err = outsideWhere(ctx, cm.restored, spec, missing); err != nil {
		return err
	}
	for _, k := range extra {
		cm.add(k, "extra", "in the restored copy, not on the source (deleted there since the backup, or never there)")
	}
	for _, k := range missing {
		cm.add(k, "missing", "on the source, missing in the restored copy")
	}
	return nil
}

// add counts a difference, and names it while fewer than
// maxNamedDifferences are.
func (cm *comparison) add(key, status, problem string) {
	cm.count++
	cm.diffs = appendDiff(cm.diffs, key, status, problem)
}

// actual is the check's result line: the rows compared and the
// differences named.
func (cm *comparison) actual(restoredRows int64) string {
	if cm.count == 0 {
		return fmt.Sprintf("%s rows compared, 0 differences", thousands(restoredRows))
	}
	var named []string
	for _, d := range cm.diffs {
		named = append(named, fmt.Sprintf("%s %s %s", cm.spec.column, d.Name, d.Status))
	}
	more := ""
	if cm.count > int64(len(cm.diffs)) {
		more = ", …"
	}
	return fmt.Sprintf("%s rows compared, %d difference(s): %s%s", thousands(restoredRows), cm.count, strings.Join(named, ", "), more)
}

// outsideWhere drops the keys side has outside the check's where.
func outsideWhere(ctx context.Context, side compareSide, spec compareSpec, keys []string) ([]string, error) {
	if side.where == "" || len(keys) == 0 {
		return keys, nil
	}
	rows, err := side.tx.Query(ctx, fmt.Sprintf("select %s::text from %s where %s = any($1::text[]::%s[])", spec.key, side.from, spec.key, spec.keyType), keys)
	if err != nil {
		return nil, err
	}
	present, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	there := map[string]bool{}
	for _, k := range present {
		there[k] = true
	}
	var out []string
	for _, k := range keys {
		if !there[k] {
			out = append(out, k)
		}
	}
	return out, nil
}

func appendDiff(diffs []TableResult, key, status, problem string) []TableResult {
	if len(diffs) >= maxNamedDifferences {
		return diffs
	}
	return append(diffs, TableResult{Name: key, Status: status, Problem: problem})
}

type keyedHashes struct {
	order []string
	hash  map[string]string
}

func keyHashes(ctx context.Context, tx pgx.Tx, q string, args []any) (keyedHashes, error) {
	out := keyedHashes{hash: map[string]string{}}
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return out, err
	}
	var k string
	var h int64
	_, err = pgx.ForEachRow(rows, []any{&k, &h}, func() error {
		out.order = append(out.order, k)
		out.hash[k] = strconv.FormatInt(h, 10)
		return nil
	})
	return out, err
}

// prepareRestoredSide resolves the table, its key and row hash in the
// restored copy.
func prepareRestoredSide(ctx context.Context, tx pgx.Tx, c Check) (compareSide, compareSpec, error) {
	side := compareSide{tx: tx}
	if c.Where != "" {
		side.where = " and (" + c.Where + ")"
	}
	t, _, err := resolveTable(ctx, tx, c.Table) // under the session's search_path
	if err != nil {
		return side, compareSpec{}, err
	}
	if err := pinDigestSettings(ctx, tx); err != nil {
		return side, compareSpec{}, err
	}
	if side.from, err = rowsOf(ctx, tx, t); err != nil {
		return side, compareSpec{}, err
	}
	side.from += " t"
	var spec compareSpec
	var notNull, unique bool
	var col string
	// The key: the named column, else the single-column primary key; it
	// must be not null and unique (a unique index on it alone).
	err = tx.QueryRow(ctx, `select a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
			exists (select 1 from pg_catalog.pg_index i where i.indrelid = a.attrelid and i.indisunique and i.indnkeyatts = 1
				and i.indkey[0] = a.attnum and i.indpred is null)
		from pg_catalog.pg_attribute a
		where a.attrelid = $1::pg_catalog.regclass and a.attnum > 0 and not a.attisdropped
		  and case when $2 = '' then a.attnum = (select i.indkey[0] from pg_catalog.pg_index i
				where i.indrelid = a.attrelid and i.indisprimary and i.indnkeyatts = 1) else a.attname = $2 end`,
		t.Quoted(), c.Key).Scan(&col, &spec.keyType, &notNull, &unique)
	switch {
	case errors.Is(err, pgx.ErrNoRows) && c.Key == "":
		return side, spec, fmt.Errorf("compare: %s has no single-column primary key: name a unique, not-null column as key", t)
	case errors.Is(err, pgx.ErrNoRows):
		return side, spec, fmt.Errorf("compare: %s has no column %s", t, c.Key)
	case err != nil:
		return side, spec, err
	case !notNull || !unique:
		return side, spec, fmt.Errorf("compare: key %s of %s must be not null and unique (a unique index on it alone)", col, t)
	}
	spec.column, spec.key = col, "t."+pgx.Identifier{col}.Sanitize()
	var binary bool
	if err := tx.QueryRow(ctx, binaryHashableSQL, t.Quoted()).Scan(&binary); err != nil {
		return side, spec, err
	}
	spec.hash = "pg_catalog.hashtextextended((t.*)::text, 0)"
	if binary {
		spec.hash = "pg_catalog.hash_record_extended(t.*, 0)"
	}
	return side, spec, nil
}

// thousands renders n with commas: 2,000,000.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
