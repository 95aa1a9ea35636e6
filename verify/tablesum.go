package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Table names one table by its schema and name, as stored in the catalog.
type Table struct {
	Schema string
	Name   string
}

var plainIdent = regexp.MustCompile(`^[a-z_][a-z0-9_$]*$`)

// String renders the table as schema.name, each part in double quotes only
// when it is not a plain lower-case identifier: public.orders,
// public."Order Lines". QuoteTable reads it back.
func (t Table) String() string { return identText(t.Schema) + "." + identText(t.Name) }

// Quoted is the table as SQL, every part quoted.
func (t Table) Quoted() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

func identText(s string) string {
	if plainIdent.MatchString(s) {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// digestSettings are pinned, inside the transaction, before anything is
// hashed or described: every setting that changes how a value is rendered
// as text. search_path is pg_catalog alone, so that type, sequence and
// table names are always schema-qualified.
const digestSettings = `select pg_catalog.set_config('search_path', 'pg_catalog', true),
	pg_catalog.set_config('TimeZone', 'UTC', true), pg_catalog.set_config('DateStyle', 'ISO, YMD', true),
	pg_catalog.set_config('IntervalStyle', 'postgres', true), pg_catalog.set_config('extra_float_digits', '1', true),
	pg_catalog.set_config('bytea_output', 'hex', true), pg_catalog.set_config('lc_monetary', 'C', true)`

// pinDigestSettings pins digestSettings for the rest of tx.
func pinDigestSettings(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, digestSettings)
	return err
}

// resolveTable finds a table named as in a check ("orders", "public.orders")
// under the session's own search_path, and tells whether its rows are
// counted alone: a partitioned table's are its partitions', and a table
// with inheritance children has theirs in a plain select too.
func resolveTable(ctx context.Context, tx pgx.Tx, name string) (t Table, alone bool, err error) {
	quoted, err := QuoteTable(name)
	if err != nil {
		return Table{}, false, err
	}
	var kind string
	var children bool
	err = tx.QueryRow(ctx, `select n.nspname, c.relname, c.relkind::text, c.relhassubclass from pg_catalog.pg_class c
		join pg_catalog.pg_namespace n on n.oid = c.relnamespace where c.oid = pg_catalog.to_regclass($1)`, quoted).Scan(&t.Schema, &t.Name, &kind, &children)
	if errors.Is(err, pgx.ErrNoRows) {
		return Table{}, false, fmt.Errorf("relation %s does not exist", name)
	}
	return t, kind == "p" || !children, err
}

// rowsOf is the FROM item of a table's rows as drill counts them: a
// partitioned table with all its partitions, any other table ONLY its own
// rows (an inheritance child is a table of its own, dumped and restored
// on its own).
func rowsOf(ctx context.Context, tx pgx.Tx, t Table) (string, error) {
	var kind string
	if err := tx.QueryRow(ctx, `select relkind::text from pg_catalog.pg_class where oid = $1::pg_catalog.regclass`, t.Quoted()).Scan(&kind); err != nil {
		return "", err
	}
	if kind == "p" {
		return t.Quoted(), nil
	}
	return "only " + t.Quoted(), nil
}

// binaryHashable tells whether every column of a table can be hashed from
// its binary value with a result that survives dump and restore: built-in
// base, range and multirange types (and arrays and domains of them) other
// than those whose values are OIDs, under deterministic collations. Enums
// hash by OID and composite types by their members, which differ after a
// restore; those tables are hashed from their text form instead.
const binaryHashableSQL = `
with recursive cols as (
	select a.atttypid as typ, a.attcollation as coll from pg_catalog.pg_attribute a
	where a.attrelid = $1::pg_catalog.regclass and a.attnum > 0 and not a.attisdropped
), types(typ) as (
	select typ from cols
	union
	select case when t.typtype = 'd' then t.typbasetype else t.typelem end
	from types join pg_catalog.pg_type t on t.oid = types.typ
	where t.typtype = 'd' or (t.typelem <> 0 and t.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc)
)
select not exists (
	select 1 from types join pg_catalog.pg_type t on t.oid = types.typ
	where t.typtype <> 'd' and not (t.typelem <> 0 and t.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc)
	  and (t.oid >= 16384 or t.typtype not in ('b', 'r', 'm')
	   or t.typname in ('oid', 'regclass', 'regproc', 'regprocedure', 'regoper', 'regoperator', 'regtype',
	                    'regconfig', 'regdictionary', 'regnamespace', 'regrole', 'regcollation', 'tid', 'xid', 'xid8', 'cid'))
) and not exists (
	select 1 from cols join pg_catalog.pg_collation c on c.oid = cols.coll where not c.collisdeterministic
)`

// EmptyChecksum is the checksum of a table without rows.
const EmptyChecksum = "0000000000000000"

// TableSum is a table's row count and checksum.
type TableSum struct {
	Rows     int64
	Checksum string
}

// SumTable counts and hashes every row of t in tx, a read-only
// transaction: the sum, folded to 64 bits, of a 64-bit hash of every row.
// A sum does not depend on the order rows are stored or read in. Rows
// are hashed from their binary values where every column type allows it
// (see binaryHashableSQL), else from their text form under pinned
// settings; either way the result does not depend on the session's or the
// server's settings, and a restored copy of the same rows gives the same
// checksum.
func SumTable(ctx context.Context, tx pgx.Tx, t Table) (TableSum, error) {
	if err := pinDigestSettings(ctx, tx); err != nil {
		return TableSum{}, err
	}
	var binary bool
	if err := tx.QueryRow(ctx, binaryHashableSQL, t.Quoted()).Scan(&binary); err != nil {
		return TableSum{}, err
	}
	if _, err := tx.Exec(ctx, "savepoint drill_checksum"); err != nil {
		return TableSum{}, err
	}
	from, err := rowsOf(ctx, tx, t)
	if err != nil {
		return TableSum{}, err
	}
	var s TableSum
	var sum string
	if binary {
		err = tx.QueryRow(ctx, ChecksumSQL(from)).Scan(&s.Rows, &sum)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42883" { // undefined_function: a type without an extended hash
			if _, err := tx.Exec(ctx, "rollback to savepoint drill_checksum"); err != nil {
				return TableSum{}, err
			}
			binary = false
		}
	}
	if !binary {
		err = tx.QueryRow(ctx, checksumTextSQL(from)).Scan(&s.Rows, &sum)
	}
	if err != nil {
		return TableSum{}, err
	}
	s.Checksum, err = FoldChecksum(sum)
	return s, err
}

// Relation is a user table with its OID, whether it is partitioned, and,
// for a partition, the OID of its parent (else 0).
type Relation struct {
	OID         uint32
	Table       Table
	Parent      uint32
	Partitioned bool
}

// Querier runs a query: a connection or a transaction.
type Querier interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}

// Relations lists the ordinary and partitioned tables outside the system
// schemas that no extension owns, partitions included.
func Relations(ctx context.Context, q Querier) ([]Relation, error) {
	rows, err := q.Query(ctx, `select c.oid, n.nspname, c.relname,
		coalesce((select i.inhparent from pg_catalog.pg_inherits i where i.inhrelid = c.oid and c.relispartition), 0), c.relkind = 'p'
		from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
		where c.relkind in ('r', 'p')
		  and n.nspname <> 'information_schema' and n.nspname !~ '^pg_(catalog|toast|temp_|toast_temp_)'
		  and not exists (select 1 from pg_catalog.pg_depend d where d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
		                  and d.objid = c.oid and d.deptype = 'e')
		order by 2, 3`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Relation, error) {
		var rel Relation
		return rel, r.Scan(&rel.OID, &rel.Table.Schema, &rel.Table.Name, &rel.Parent, &rel.Partitioned)
	})
}

// UserTables lists the tables whose rows a database holds, as drill
// compares them: the Relations that are not partitions. A partitioned
// table stands for all its partitions (rows are compared as a whole,
// whichever partition a restore put them in).
func UserTables(ctx context.Context, q Querier) ([]Table, error) {
	rels, err := Relations(ctx, q)
	if err != nil {
		return nil, err
	}
	var out []Table
	for _, r := range rels {
		if r.Parent == 0 {
			out = append(out, r.Table)
		}
	}
	return out, nil
}

// tableSchemaSQL describes a table in lines that a restore reproduces:
// columns in order with type, nullability, default, identity and
// generation; constraints and indexes by name with their definitions;
// the partition key. Run with pinDigestSettings in force, so that every
// name in it is schema-qualified.
const tableSchemaSQL = `
select 'column ' || pg_catalog.quote_ident(a.attname) || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod)
	|| case when a.attnotnull then ' not null' else '' end
	|| case when a.attidentity::pg_catalog.text <> '' then ' identity ' || a.attidentity::pg_catalog.text else '' end
	|| case when a.attgenerated::pg_catalog.text <> '' then ' generated ' else case when d.adbin is not null then ' default ' else '' end end
	|| coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid), '')
from pg_catalog.pg_attribute a left join pg_catalog.pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where a.attrelid = $1::pg_catalog.regclass and a.attnum > 0 and not a.attisdropped
union all
select * from (
	select 'constraint ' || pg_catalog.quote_ident(conname) || ' ' || pg_catalog.pg_get_constraintdef(oid)
	from pg_catalog.pg_constraint where conrelid = $1::pg_catalog.regclass order by conname) c
union all
select * from (
	select 'index ' || pg_catalog.pg_get_indexdef(indexrelid)
	from pg_catalog.pg_index where indrelid = $1::pg_catalog.regclass order by indexrelid::pg_catalog.regclass::text) i
union all
select 'partition by ' || pg_catalog.pg_get_partkeydef($1::pg_catalog.regclass) where pg_catalog.pg_get_partkeydef($1::pg_catalog.regclass) is not null`

// SchemaDigest is the SHA-256 of a table's description (tableSchemaSQL).
func SchemaDigest(ctx context.Context, tx pgx.Tx, t Table) (string, error) {
	if err := pinDigestSettings(ctx, tx); err != nil {
		return "", err
	}
	rows, err := tx.Query(ctx, tableSchemaSQL, t.Quoted())
	if err != nil {
		return "", err
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// DatabaseSchemaDigest combines per-table schema digests into one: the
// SHA-256 of "name digest" lines in name order.
func DatabaseSchemaDigest(tables map[string]string) string {
	names := make([]string, 0, len(tables))
	for n := range tables {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		h.Write([]byte(n + " " + tables[n] + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ParseTable reads a schema-qualified name as Table.String writes it (or
// as pg_dump writes it): public.orders, "Mixed Case"."Order Lines".
func ParseTable(s string) (Table, error) {
	parts, err := splitQualified(s)
	if err != nil {
		return Table{}, err
	}
	if len(parts) != 2 {
		return Table{}, fmt.Errorf("table %q: want schema.table", s)
	}
	return Table{Schema: parts[0], Name: parts[1]}, nil
}

// treeSQL selects, as relid, the table named by the SQL text expression
// name and, for a partitioned table, all its partitions.
func treeSQL(name string) string {
	return "select pg_catalog.to_regclass(" + name + ") as relid union select relid from pg_catalog.pg_partition_tree(pg_catalog.to_regclass(" + name + "))"
}

// AddChecksums adds checksums as the sums they fold (modulo 2^64): the
// checksum of a partitioned table is the sum of its partitions'.
func AddChecksums(sums ...string) (string, error) {
	var total uint64
	for _, s := range sums {
		v, err := strconv.ParseUint(s, 16, 64)
		if err != nil || len(s) != 16 {
			return "", fmt.Errorf("checksum %q: want 16 hex digits", s)
		}
		total += v
	}
	return fmt.Sprintf("%016x", total), nil
}
