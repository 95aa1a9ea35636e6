package verify

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// maxNamed is how many differing tables a check result names; the run
// record's details hold all of them.
const maxNamed = 20

// fingerprintCheck compares every table of the restored database with the
// backup's fingerprint: the same tables, each with the same row count,
// checksum and schema digest, over up to opts.Jobs connections.
func fingerprintCheck(ctx context.Context, conn *pgx.Conn, c Check, opts Opts, r *Result) error {
	fp := opts.Fingerprint
	if fp == nil {
		return errors.New("the backup has no fingerprint (NAME" + FingerprintSuffix + " beside it): " +
			"make backups with `drill dump DATABASE_URL --out PATH` (in place of pg_dump -Fc -f PATH) to fingerprint them")
	}
	if opts.BackupSHA256 != "" && opts.BackupSHA256 != fp.Dump.SHA256 {
		return fmt.Errorf("the backup's sha256 is %s, its fingerprint's dump.sha256 %s: the fingerprint belongs to another dump", opts.BackupSHA256, fp.Dump.SHA256)
	}
	excluded, err := excludedTables(c.Exclude)
	if err != nil {
		return err
	}
	restored, err := readTables(ctx, conn)
	if err != nil {
		return err
	}
	tt := tableTally{excluded: excluded, want: map[string]TableFingerprint{}, schemas: map[string]string{}}
	for _, t := range fp.Tables {
		if !excluded[t.Name] {
			tt.want[t.Name] = t
		}
	}
	var toMeasure []Table
	for _, t := range restored {
		name := t.String()
		switch {
		case excluded[name]:
			tt.details = append(tt.details, TableResult{Name: name, Status: "excluded"})
		case tt.want[name].Name == "":
			tt.details = append(tt.details, TableResult{Name: name, Status: "unexpected", Problem: "not in the fingerprint: the backup did not hold this table"})
		default:
			toMeasure = append(toMeasure, t)
		}
	}
	measured, err := measureSideBySide(ctx, conn, opts, toMeasure)
	if err != nil {
		return err
	}
	r.Counted = tt.addMeasured(measured)
	sort.Slice(tt.details, func(i, j int) bool { return tt.details[i].Name < tt.details[j].Name })
	r.Details = tt.details
	tt.verdict(r, fp.SchemaSHA256)
	return nil
}

// excludedTables is the set of the tables a check excludes, by their
// qualified names.
func excludedTables(names []string) (map[string]bool, error) {
	excluded := map[string]bool{}
	for _, name := range names {
		t, err := ParseTable(qualify(name))
		if err != nil {
			return nil, err
		}
		excluded[t.String()] = true
	}
	return excluded, nil
}

// tableTally is the restored database's tables held against those of a
// fingerprint, by qualified name.
type tableTally struct {
	want     map[string]TableFingerprint // the fingerprint's tables not excluded
	excluded map[string]bool
	details  []TableResult     // a result a table
	rows     int64             // the rows of the tables measured
	schemas  map[string]string // the schema digests of the tables measured
}

// addMeasured adds the result of each table measured, and of each table of
// the fingerprint that was not, and returns the rows counted per table.
func (tt *tableTally) addMeasured(measured []Measure) map[string]int64 {
	found := map[string]bool{}
	counted := map[string]int64{}
	for _, m := range measured {
		name := m.Table.String()
		found[name] = true
		if m.Err != nil {
			tt.details = append(tt.details, TableResult{Name: name, Status: "differs", Problem: m.Err.Error()})
			continue
		}
		counted[name] = m.Sum.Rows
		tt.rows += m.Sum.Rows
		tt.schemas[name] = m.SchemaSHA256
		tt.details = append(tt.details, compareTable(tt.want[name], m))
	}
	for name := range tt.want {
		if !found[name] {
			tt.details = append(tt.details, TableResult{Name: name, Status: "missing", Problem: "in the fingerprint, not in the restored database"})
		}
	}
	return counted
}

// verdict sets r.Actual and r.Passed from the tables' results: a pass
// when every table matches, its schema too, and the schema digests add up
// to the fingerprint's schemaSHA256.
func (tt *tableTally) verdict(r *Result, schemaSHA256 string) {
	var bad []string
	schemaOK := true
	for _, d := range tt.details {
		if d.Status != "match" && d.Status != "excluded" {
			bad = append(bad, d.Name+": "+d.Problem)
		}
		if strings.Contains(d.Problem, "schema") {
			schemaOK = false
		}
	}
	schema := "all match"
	contradicts := len(tt.excluded) == 0 && len(bad) == 0 && DatabaseSchemaDigest(tt.schemas) != schemaSHA256
	if !schemaOK || contradicts {
		schema = "differs"
	}
	if contradicts {
		r.Actual = fmt.Sprintf("every one of %s matches, but the fingerprint's schema_sha256 is not the digest of its tables' schema digests: the file contradicts itself",
			Plural(len(tt.want), "table"))
		return
	}
	compared := 0
	for _, d := range tt.details {
		if d.Status != "excluded" {
			compared++
		}
	}
	if len(bad) == 0 && schemaOK {
		r.Actual = fmt.Sprintf("%s, %s rows, schema: %s", Plural(len(tt.want), "table"), GroupDigits(tt.rows), schema)
		if len(tt.excluded) > 0 {
			r.Actual += fmt.Sprintf(" (%d excluded)", len(tt.excluded))
		}
		r.Passed = true
		return
	}
	r.Actual = fmt.Sprintf("%s of %s differ (schema: %s): %s", GroupDigits(int64(len(bad))), Plural(compared, "table"), schema, joinFirst(bad, maxNamed))
}

func compareTable(want TableFingerprint, m Measure) TableResult {
	got, exp := m.Sum.Rows, want.Rows
	d := TableResult{Name: m.Table.String(), Status: "match", Rows: &got, ExpectedRows: &exp, Checksum: m.Sum.Checksum, ExpectedChecksum: want.Checksum}
	var problems []string
	if got != exp {
		problems = append(problems, fmt.Sprintf("%s rows, expected %s", GroupDigits(got), GroupDigits(exp)))
	} else if m.Sum.Checksum != want.Checksum {
		problems = append(problems, fmt.Sprintf("checksum %s, expected %s", m.Sum.Checksum, want.Checksum))
	}
	if m.SchemaSHA256 != want.SchemaSHA256 {
		problems = append(problems, "schema differs (columns, constraints or indexes)")
	}
	if len(problems) > 0 {
		d.Status, d.Problem = "differs", strings.Join(problems, "; ")
	}
	return d
}

// readTables lists the user tables in a read-only transaction.
func readTables(ctx context.Context, conn *pgx.Conn) ([]Table, error) {
	var tables []Table
	err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		tables, err = UserTables(ctx, tx)
		return err
	})
	return tables, err
}

// measureSideBySide measures tables over conn and up to opts.Jobs-1 more
// connections to opts.DSN, each in a read-only transaction.
func measureSideBySide(ctx context.Context, conn *pgx.Conn, opts Opts, tables []Table) ([]Measure, error) {
	conns := []*pgx.Conn{conn}
	defer func() {
		for _, c := range conns[1:] {
			c.Close(context.WithoutCancel(ctx))
		}
	}()
	for len(conns) < min(max(opts.Jobs, 1), max(len(tables), 1)) && opts.DSN != "" {
		c, err := Connect(ctx, opts.DSN, opts)
		if err != nil {
			break // measure with the connections there are
		}
		conns = append(conns, c)
	}
	var txs []pgx.Tx
	defer func() {
		for _, tx := range txs {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	for _, c := range conns {
		tx, err := c.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
		if err != nil {
			return nil, err
		}
		txs = append(txs, tx)
	}
	return MeasureTables(ctx, txs, tables, true, nil)
}

// TableInfo is one table of a run's inventory of the restored database.
type TableInfo struct {
	Name string `json:"name"`
	Rows int64  `json:"rows"`
	// RowsExact: Rows was counted; else it is the planner's estimate
	// (after ANALYZE).
	RowsExact bool  `json:"rows_exact"`
	Bytes     int64 `json:"bytes"`
}

// Inventory is the tables of a restored database.
type Inventory struct {
	// RunID is the run it was taken in (for a previous inventory).
	RunID  int64
	Tables []TableInfo
}

// TakeInventory lists the user tables of the restored database with their
// size and estimated rows (partitioned tables as a whole). Tables never
// analyzed are counted.
func TakeInventory(ctx context.Context, conn *pgx.Conn) ([]TableInfo, error) {
	var out []TableInfo
	err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		tables, err := UserTables(ctx, tx)
		if err != nil || len(tables) == 0 {
			return err
		}
		names := make([]string, len(tables))
		for i, t := range tables {
			names[i] = t.Quoted()
		}
		i := 0
		var unknown []int
		// Rows and bytes of the table itself, or of a partitioned
		// table's partitions (its own reltuples already sums theirs).
		rows, err := tx.Query(ctx, `select coalesce(sum(greatest(c.reltuples, 0)), 0)::int8,
			coalesce(bool_or(c.reltuples < 0), false),
			coalesce(sum(pg_catalog.pg_total_relation_size(c.oid)), 0)::int8
			from unnest($1::text[]) with ordinality as t(name, i)
			left join lateral (select c.oid, c.reltuples from (`+treeSQL("t.name")+`) p
				join pg_catalog.pg_class c on c.oid = p.relid and c.relkind <> 'p') c on true
			group by t.i order by t.i`, names)
		if err != nil {
			return err
		}
		var est, size int64
		var never bool
		_, err = pgx.ForEachRow(rows, []any{&est, &never, &size}, func() error {
			out = append(out, TableInfo{Name: tables[i].String(), Rows: est, Bytes: size})
			if never {
				unknown = append(unknown, i)
			}
			i++
			return nil
		})
		if err != nil {
			return err
		}
		for _, j := range unknown {
			from, err := rowsOf(ctx, tx, tables[j])
			if err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, "select pg_catalog.count(*) from "+from).Scan(&out[j].Rows); err != nil {
				return err
			}
			out[j].RowsExact = true
		}
		return nil
	})
	return out, err
}

// driftCheck compares this run's inventory with the last passing run's.
func driftCheck(c Check, opts Opts, r *Result) error {
	if opts.Inventory == nil {
		return errors.New("drift: no inventory of the restored database")
	}
	if opts.Previous == nil {
		r.Actual, r.Passed = "no earlier run to compare", true
		return nil
	}
	now := map[string]TableInfo{}
	for _, t := range opts.Inventory.Tables {
		now[t.Name] = t
	}
	limit := c.maxShrink()
	var bad []string
	for _, was := range opts.Previous.Tables {
		is, ok := now[was.Name]
		before := was.Rows
		d := TableResult{Name: was.Name, Status: "ok", ExpectedRows: &before}
		switch {
		case !ok:
			d.Status, d.Problem = "gone", fmt.Sprintf("had %s rows in run %d", GroupDigits(was.Rows), opts.Previous.RunID)
		default:
			rows := is.Rows
			d.Rows = &rows
			if was.Rows > 0 {
				shrink := 100 * float64(was.Rows-is.Rows) / float64(was.Rows)
				if shrink > limit {
					d.Status, d.Problem = "shrunk", fmt.Sprintf("%s → %s rows (-%.0f%%, more than %g%%)", GroupDigits(was.Rows), GroupDigits(is.Rows), math.Floor(shrink), limit)
				}
			}
		}
		if d.Status != "ok" {
			bad = append(bad, d.Name+" "+d.Status+": "+d.Problem)
		}
		r.Details = append(r.Details, d)
	}
	if len(bad) > 0 {
		r.Actual = fmt.Sprintf("%s of %s changed since run %d: %s", GroupDigits(int64(len(bad))), Plural(len(opts.Previous.Tables), "table"), opts.Previous.RunID, joinFirst(bad, maxNamed))
		return nil
	}
	r.Actual = fmt.Sprintf("%s compared with run %d: none gone, none shrunk more than %g%%", Plural(len(opts.Previous.Tables), "table"), opts.Previous.RunID, limit)
	r.Passed = true
	return nil
}

// ensureAmcheck creates the amcheck extension in the restored database
// when it is missing and the check's role may create it (on RDS, the
// master user may); elsewhere the target installs it (see CheckPreparer).
func ensureAmcheck(ctx context.Context, conn *pgx.Conn) {
	var n int
	if err := conn.QueryRow(ctx, "select count(*) from pg_catalog.pg_extension where extname = 'amcheck'").Scan(&n); err != nil || n > 0 {
		return
	}
	_ = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{AccessMode: pgx.ReadWrite}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "create extension if not exists amcheck")
		return err
	})
}

// amcheck runs bt_index_check on every B-tree index and verify_heapam on
// every table (of c.Tables, when given), naming each corrupt relation with
// its first error.
func amcheck(ctx context.Context, tx pgx.Tx, c Check, r *Result) error {
	var schema string
	var heapam bool
	err := tx.QueryRow(ctx, `select n.nspname, exists (select 1 from pg_catalog.pg_proc p where p.proname = 'verify_heapam' and p.pronamespace = e.extnamespace)
		from pg_catalog.pg_extension e join pg_catalog.pg_namespace n on n.oid = e.extnamespace where e.extname = 'amcheck'`).Scan(&schema, &heapam)
	if errors.Is(err, pgx.ErrNoRows) {
		return errors.New("amcheck: the amcheck extension is not installed in the restored database, and drill's check role could not create it")
	}
	if err != nil {
		return err
	}
	if err := pinDigestSettings(ctx, tx); err != nil {
		return err
	}
	var only []string
	for _, name := range c.Tables {
		q, err := QuoteTable(name)
		if err != nil {
			return err
		}
		only = append(only, q)
	}
	rels, err := amcheckTargets(ctx, tx, only)
	if err != nil {
		return err
	}
	heap := c.HeapAllIndexed == nil || *c.HeapAllIndexed
	fn := pgx.Identifier{schema}.Sanitize()
	var corrupt []string
	indexes, tables := 0, 0
	for _, rel := range rels {
		var q string
		if rel.index {
			indexes++
			q = fmt.Sprintf("select null::text from %s.bt_index_check(%d::pg_catalog.oid::pg_catalog.regclass, %t)", fn, rel.oid, heap)
		} else {
			if !heapam {
				continue
			}
			tables++
			q = fmt.Sprintf("select 'block ' || blkno || coalesce(', item ' || offnum, '') || ': ' || msg from %s.verify_heapam(%d::pg_catalog.oid::pg_catalog.regclass) limit 1", fn, rel.oid)
		}
		problem, err := firstProblem(ctx, tx, q)
		if err != nil {
			return err
		}
		if problem != "" {
			kind := "table"
			if rel.index {
				kind = "index"
			}
			corrupt = append(corrupt, rel.name+" ("+kind+"): "+problem)
			r.Details = append(r.Details, TableResult{Name: rel.name, Status: "corrupt", Problem: kind + ": " + problem})
		}
	}
	checked := Plural(indexes, "index") + " and " + Plural(tables, "table")
	if !heapam {
		checked = Plural(indexes, "index") + " (this amcheck has no verify_heapam: tables not checked)"
	}
	if len(corrupt) > 0 {
		r.Actual = fmt.Sprintf("%s corrupt of %s: %s", GroupDigits(int64(len(corrupt))), checked, joinFirst(corrupt, maxNamed))
		return nil
	}
	r.Actual, r.Passed = "checked "+checked+": no corruption", true
	return nil
}

type amcheckRel struct {
	oid   uint32
	name  string
	index bool
}

// amcheckTargets lists the user tables with storage and their valid
// B-tree indexes (of only, when given).
func amcheckTargets(ctx context.Context, tx pgx.Tx, only []string) ([]amcheckRel, error) {
	rows, err := tx.Query(ctx, `with tabs as (
		select c.oid, n.nspname, c.relname from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
		where c.relkind in ('r', 'm') and c.relpersistence <> 't'
		  and n.nspname <> 'information_schema' and n.nspname !~ '^pg_(catalog|toast|temp_|toast_temp_)'
		  and ($1::text[] is null or c.oid in (select p.relid from unnest($1::text[]) u(name),
		       lateral (`+treeSQL("u.name")+`) p)))
	select oid, nspname, relname, false from tabs
	union all
	select ic.oid, n.nspname, ic.relname, true from tabs join pg_catalog.pg_index i on i.indrelid = tabs.oid
	join pg_catalog.pg_class ic on ic.oid = i.indexrelid join pg_catalog.pg_namespace n on n.oid = ic.relnamespace
	join pg_catalog.pg_am am on am.oid = ic.relam
	where am.amname = 'btree' and i.indisvalid and i.indisready
	order by 4, 2, 3`, only)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (amcheckRel, error) {
		var a amcheckRel
		var t Table
		err := row.Scan(&a.oid, &t.Schema, &t.Name, &a.index)
		a.name = t.String()
		return a, err
	})
}

// firstProblem runs q in a savepoint: a row is the first problem found,
// an error raised by amcheck is the problem itself.
func firstProblem(ctx context.Context, tx pgx.Tx, q string) (string, error) {
	if _, err := tx.Exec(ctx, "savepoint drill_amcheck"); err != nil {
		return "", err
	}
	var problem *string
	err := tx.QueryRow(ctx, q).Scan(&problem)
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", nil
	case errors.As(err, &pgErr) && corruptionClass(pgErr.Code):
		if _, err := tx.Exec(ctx, "rollback to savepoint drill_amcheck"); err != nil {
			return "", err
		}
		return pgErr.Message, nil
	case err != nil:
		return "", err
	}
	if problem == nil {
		return "", nil
	}
	return *problem, nil
}

// corruptionClass tells the errors reading a damaged relation raises:
// internal errors (XX: data_corrupted, index_corrupted), data exceptions
// (22) and system errors (58: a transaction status or file that a damaged
// tuple points to cannot be read).
func corruptionClass(code string) bool {
	return strings.HasPrefix(code, "XX") || strings.HasPrefix(code, "22") || strings.HasPrefix(code, "58")
}

// Plural says n things: "1 table", "41,203 tables", "2 indexes".
func Plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	if strings.HasSuffix(thing, "x") {
		return fmt.Sprintf("%s %ses", GroupDigits(int64(n)), thing)
	}
	return fmt.Sprintf("%s %ss", GroupDigits(int64(n)), thing)
}

// GroupDigits renders 41203118 as 41,203,118.
func GroupDigits(n int64) string {
	if n < 0 {
		return "-" + GroupDigits(-n)
	}
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func joinFirst(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, "; ")
	}
	return strings.Join(items[:n], "; ") + fmt.Sprintf("; and %d more (see the run's details)", len(items)-n)
}
