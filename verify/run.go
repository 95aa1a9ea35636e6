package verify

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Opts configures how checks run.
type Opts struct {
	// StatementTimeout bounds every statement of a check (default 10m).
	StatementTimeout time.Duration
	// BackupCreatedAt is the creation time of the restored backup; recency
	// checks measure the newest row against it.
	BackupCreatedAt time.Time
	// DSN is the restored database's connection string: checks that work
	// side by side open up to Jobs connections with it.
	DSN  string
	Jobs int
	// Fingerprint is the restored backup's fingerprint, if it has one, and
	// BackupSHA256 the digest of the backup as it was read.
	Fingerprint  *Fingerprint
	BackupSHA256 string
	// Previous is the inventory of the drill's last passing run (nil: none)
	// and Inventory this run's: drift checks compare them.
	Previous  *Inventory
	Inventory *Inventory
}

// sessionParams pin every setting that changes how values are rendered as
// text, so results do not depend on the server's or the user's defaults.
var sessionParams = map[string]string{
	"application_name":              "drill",
	"default_transaction_read_only": "on",
	"TimeZone":                      "UTC",
	"DateStyle":                     "ISO, YMD",
	"IntervalStyle":                 "postgres",
	"extra_float_digits":            "1",
	"bytea_output":                  "hex",
	"lock_timeout":                  "30s",
}

// Connect opens a read-only connection for running checks. dsn may hold a
// password: it is never logged or returned in errors.
func Connect(ctx context.Context, dsn string, opts Opts) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("verify: the restored database's connection string is invalid")
	}
	conn, err := connectPinned(ctx, cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("verify: connect to restored database %s on %s: %w", cfg.Database, cfg.Host, RedactConnErr(err))
	}
	return conn, nil
}

// connectPinned connects with sessionParams and the statement timeout.
func connectPinned(ctx context.Context, cfg *pgx.ConnConfig, opts Opts) (*pgx.Conn, error) {
	timeout := opts.StatementTimeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(timeout.Milliseconds(), 10)
	return pgx.ConnectConfig(ctx, cfg)
}

// RunOne runs a single check inside its own read-only transaction.
func RunOne(ctx context.Context, conn *pgx.Conn, c Check, opts Opts) Result {
	r := Result{Name: c.Name, Type: c.Type, Expected: c.Expected()}
	if r.Name == "" {
		r.Name = c.DefaultName()
	}
	start := time.Now()
	err := c.Validate()
	switch {
	case err != nil:
	case c.Type == TypeFingerprint:
		err = fingerprintCheck(ctx, conn, c, opts, &r)
	case c.Type == TypeDrift:
		err = driftCheck(c, opts, &r)
	case c.Type == TypeCompare:
		err = compareCheck(ctx, conn, c, opts, &r)
	default:
		if c.Type == TypeAmcheck {
			ensureAmcheck(ctx, conn)
		}
		err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			return runCheck(ctx, tx, c, opts, &r)
		})
	}
	r.Duration = time.Since(start)
	if err != nil {
		r.Passed = false
		r.Error = err.Error()
	}
	return r
}

func runCheck(ctx context.Context, tx pgx.Tx, c Check, opts Opts, r *Result) error {
	switch c.Type {
	case TypeRowCount:
		return rowCount(ctx, tx, c, r)
	case TypeChecksum:
		return checksum(ctx, tx, c, r)
	case TypeRecency:
		return recency(ctx, tx, c, opts, r)
	case TypeSQL:
		return sqlValue(ctx, tx, c, r)
	case TypeAmcheck:
		return amcheck(ctx, tx, c, r)
	}
	return fmt.Errorf("unknown check type %q", c.Type)
}

func rowCount(ctx context.Context, tx pgx.Tx, c Check, r *Result) error {
	tbl, err := QuoteTable(c.Table)
	if err != nil {
		return err
	}
	var n int64
	if err := tx.QueryRow(ctx, "select pg_catalog.count(*) from "+tbl).Scan(&n); err != nil {
		return err
	}
	r.Actual = strconv.FormatInt(n, 10)
	if t, alone, err := resolveTable(ctx, tx, c.Table); err == nil && alone {
		r.Counted = map[string]int64{t.String(): n}
	}
	r.Passed = (c.Min == nil || n >= *c.Min) && (c.Max == nil || n <= *c.Max) && (c.Equals == nil || n == *c.Equals)
	return nil
}

// ChecksumSQL returns the query behind a checksum check of a table whose
// columns all hash from their binary values (see SumTable): the sum, as an
// exact numeric, of the 64-bit hash of every row of from (a quoted table,
// "only" before it for its own rows alone).
func ChecksumSQL(from string) string {
	return "select pg_catalog.count(*), coalesce(pg_catalog.sum(pg_catalog.hash_record_extended(t.*, 0)), 0)::text from " + from + " t"
}

// checksumTextSQL is the fallback for tables with a column type whose
// binary hash would not survive a restore or that has no extended hash
// function (enums, json, point, …): the hash of each row's text form,
// rendered under digestSettings.
func checksumTextSQL(from string) string {
	return "select pg_catalog.count(*), coalesce(pg_catalog.sum(pg_catalog.hashtextextended((t.*)::text, 0)), 0)::text from " + from + " t"
}

func checksum(ctx context.Context, tx pgx.Tx, c Check, r *Result) error {
	t, _, err := resolveTable(ctx, tx, c.Table)
	if err != nil {
		return err
	}
	sum, err := SumTable(ctx, tx, t) // a partitioned table's rows, else the table's own
	if err != nil {
		return err
	}
	r.Actual = sum.Checksum
	r.Counted = map[string]int64{t.String(): sum.Rows}
	r.Passed = c.Expect == nil || strings.EqualFold(strings.TrimSpace(*c.Expect), sum.Checksum)
	return nil
}

// FoldChecksum reduces the exact sum of row hashes to 64 bits, rendered as
// 16 hexadecimal digits.
func FoldChecksum(sum string) (string, error) {
	n, ok := new(big.Int).SetString(sum, 10)
	if !ok {
		return "", fmt.Errorf("checksum: unexpected sum %q", sum)
	}
	mod := new(big.Int).Lsh(big.NewInt(1), 64)
	n.Mod(n, mod) // Euclidean: always in [0, 2^64)
	return fmt.Sprintf("%016x", n), nil
}

func recency(ctx context.Context, tx pgx.Tx, c Check, opts Opts, r *Result) error {
	tbl, err := QuoteTable(c.Table)
	if err != nil {
		return err
	}
	col := pgx.Identifier{c.Column}.Sanitize()
	var newest *time.Time
	if err := tx.QueryRow(ctx, "select pg_catalog.max("+col+")::timestamptz from "+tbl).Scan(&newest); err != nil {
		return err
	}
	if newest == nil {
		r.Actual = "no rows"
		return fmt.Errorf("recency: %s has no rows with a value in %s", c.Table, c.Column)
	}
	n := newest.UTC()
	r.Newest = &n
	if opts.BackupCreatedAt.IsZero() {
		r.Actual = "newest " + n.Format(time.RFC3339)
		return fmt.Errorf("recency: the backup's creation time is unknown")
	}
	age := opts.BackupCreatedAt.Sub(n)
	r.Actual = fmt.Sprintf("newest %s, %s before the backup", n.Format(time.RFC3339), age.Round(time.Second))
	r.Passed = age <= c.MaxAge
	return nil
}

func sqlValue(ctx context.Context, tx pgx.Tx, c Check, r *Result) error {
	// The extended protocol runs exactly one statement, with text results:
	// the value compared is PostgreSQL's own text form of it.
	rr := tx.Conn().PgConn().ExecParams(ctx, c.Query, nil, nil, nil, nil)
	if n := len(rr.FieldDescriptions()); n != 1 {
		if _, err := rr.Close(); err != nil {
			return err
		}
		return fmt.Errorf("sql: query must return one column, got %d", n)
	}
	var values []string
	var isNull bool
	for rr.NextRow() {
		v := rr.Values()[0]
		isNull = v == nil
		values = append(values, string(v))
	}
	if _, err := rr.Close(); err != nil {
		return err
	}
	if len(values) != 1 {
		return fmt.Errorf("sql: query must return one row, got %d", len(values))
	}
	if isNull {
		r.Actual = "NULL"
	} else {
		r.Actual = values[0]
	}
	r.Passed = !isNull && c.Expect != nil && r.Actual == *c.Expect
	return nil
}

// QuoteTable quotes "schema.table" or "table" as identifiers. Parts already
// in double quotes are kept as written.
func QuoteTable(name string) (string, error) {
	parts, err := splitQualified(name)
	if err != nil {
		return "", err
	}
	return pgx.Identifier(parts).Sanitize(), nil
}

func splitQualified(name string) ([]string, error) {
	// Unquoted parts fold to lower case, as PostgreSQL folds them in SQL.
	var parts []string
	var cur strings.Builder
	quoted, wasQuoted := false, false
	flush := func() {
		p := cur.String()
		if !wasQuoted {
			p = strings.ToLower(p)
		}
		parts = append(parts, p)
		cur.Reset()
		wasQuoted = false
	}
	for i := 0; i < len(name); i++ {
		ch := name[i]
		switch {
		case ch == '"' && quoted && i+1 < len(name) && name[i+1] == '"':
			cur.WriteByte('"')
			i++
		case ch == '"':
			quoted = !quoted
			wasQuoted = true
		case ch == '.' && !quoted:
			flush()
		default:
			cur.WriteByte(ch)
		}
	}
	flush()
	if quoted || len(parts) > 2 {
		return nil, fmt.Errorf("table %q: want table or schema.table", name)
	}
	for _, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("table %q: want table or schema.table", name)
		}
	}
	return parts, nil
}

// RedactConnErr keeps the cause of a connection error and drops the rest:
// pgconn's connect errors carry the connection string, which may hold a
// password.
func RedactConnErr(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return fmt.Errorf("%s (SQLSTATE %s)", pgErr.Message, pgErr.Code)
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		if inner := connErr.Unwrap(); inner != nil {
			err = inner
		}
	}
	// pgx joins one error per address it tried: the first says it.
	if first, _, more := strings.Cut(err.Error(), "\n"); more {
		return errors.New(first)
	}
	return err
}

// SideBySide runs checks[i] for each i of indexes over up to jobs
// connections (conn, and more to opts.DSN), calling done, one call at a
// time, as each check finishes. jobs 1 keeps the order of indexes.
func SideBySide(ctx context.Context, conn *pgx.Conn, checks []Check, indexes []int, jobs int, opts Opts, done func(int, Result)) {
	jobs = min(jobs, len(indexes))
	if jobs <= 1 || opts.DSN == "" {
		for _, i := range indexes {
			done(i, RunOne(ctx, conn, checks[i], opts))
		}
		return
	}
	conns := []*pgx.Conn{conn}
	defer func() {
		for _, c := range conns[1:] {
			c.Close(context.WithoutCancel(ctx))
		}
	}()
	for len(conns) < jobs {
		c, err := Connect(ctx, opts.DSN, opts)
		if err != nil {
			break // check with the connections there are
		}
		conns = append(conns, c)
	}
	next := make(chan int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				res := RunOne(ctx, c, checks[i], opts)
				mu.Lock()
				done(i, res)
				mu.Unlock()
			}
		}()
	}
	for _, i := range indexes {
		next <- i
	}
	close(next)
	wg.Wait()
}
