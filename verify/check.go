// Package verify runs checks against a restored database.
//
// It knows nothing about where the database came from: it gets a connection
// and a list of checks and returns one Result per check. A check that cannot
// run (missing table, bad SQL, timeout) fails with that error; it never passes.
package verify

import (
	"fmt"
	"strings"
	"time"
)

// Check types.
const (
	TypeRowCount = "row_count"
	TypeChecksum = "checksum"
	TypeRecency  = "recency"
	TypeSQL      = "sql"
	// TypeFingerprint compares every table, its rows and the schema with
	// the fingerprint `drill dump` wrote beside the backup.
	TypeFingerprint = "fingerprint"
	// TypeAmcheck verifies B-tree indexes and heap pages with amcheck.
	TypeAmcheck = "amcheck"
	// TypeDrift compares the table inventory with the last passing run.
	TypeDrift = "drift"
	// TypeCompare compares a table's rows with a live database (a
	// replica): the one check that reads production, when asked to.
	TypeCompare = "compare"
)

// Types lists every check type, in documentation order.
var Types = []string{TypeRowCount, TypeChecksum, TypeRecency, TypeSQL, TypeFingerprint, TypeAmcheck, TypeDrift, TypeCompare}

// Check is one verification to run against a restored database.
// Which fields apply depends on Type; Validate says which are missing.
type Check struct {
	Type string `json:"type"`
	Name string `json:"name"`

	// Table is "schema.table" or "table" (row_count, checksum, recency).
	Table string `json:"table,omitempty"`
	// Column is the timestamp or date column of a recency check.
	Column string `json:"column,omitempty"`
	// Query is the SQL of an sql check; it must return one row with one column.
	Query string `json:"query,omitempty"`

	// Min, Max and Equals bound a row_count.
	Min    *int64 `json:"min,omitempty"`
	Max    *int64 `json:"max,omitempty"`
	Equals *int64 `json:"equals,omitempty"`
	// MaxAge is how much older than the backup the newest row of a recency check may be.
	MaxAge time.Duration `json:"max_age,omitempty"`
	// Expect is the expected text of an sql check, or the expected checksum (optional).
	Expect *string `json:"expect,omitempty"`
	// Exclude names tables a fingerprint check leaves out.
	Exclude []string `json:"exclude,omitempty"`
	// Tables limits an amcheck check to these tables (default: all).
	Tables []string `json:"tables,omitempty"`
	// HeapAllIndexed makes amcheck also check that every heap row is in
	// each index (default true).
	HeapAllIndexed *bool `json:"heapallindexed,omitempty"`
	// MaxShrinkPercent is how much a table's rows may shrink since the last
	// passing run before a drift check fails (default 10).
	MaxShrinkPercent *float64 `json:"max_shrink_percent,omitempty"`

	// SourceURL is the live database a compare check reads (read-only).
	// It holds a password: never stored, logged, rendered or exported.
	SourceURL string `json:"-"`
	// Source names that database without user or password (host:port/db),
	// for the record.
	Source string `json:"source,omitempty"`
	// Key is the compare check's key column (default: the primary key);
	// Where a predicate applied on both sides; MaxDifferences how many
	// differing rows still pass (default 0).
	Key            string `json:"key,omitempty"`
	Where          string `json:"where,omitempty"`
	MaxDifferences *int64 `json:"max_differences,omitempty"`
}

func (c Check) maxDifferences() int64 {
	if c.MaxDifferences != nil {
		return *c.MaxDifferences
	}
	return 0
}

// DefaultMaxShrinkPercent is a drift check's max_shrink when none is given.
const DefaultMaxShrinkPercent = 10.0

// Validate reports the first thing that would stop the check from running or
// make it unable to fail. The error names the missing or wrong field.
func (c Check) Validate() error {
	switch c.Type {
	case TypeRowCount:
		if c.Table == "" {
			return fmt.Errorf("row_count check needs table")
		}
		if c.Min == nil && c.Max == nil && c.Equals == nil {
			return fmt.Errorf("row_count check needs min, max or equals")
		}
		if c.Min != nil && c.Max != nil && *c.Min > *c.Max {
			return fmt.Errorf("row_count check has min %d greater than max %d", *c.Min, *c.Max)
		}
	case TypeChecksum:
		if c.Table == "" {
			return fmt.Errorf("checksum check needs table")
		}
	case TypeRecency:
		if c.Table == "" || c.Column == "" {
			return fmt.Errorf("recency check needs table and column")
		}
		if c.MaxAge <= 0 {
			return fmt.Errorf("recency check needs max_age (a duration such as 26h)")
		}
	case TypeSQL:
		if strings.TrimSpace(c.Query) == "" {
			return fmt.Errorf("sql check needs query")
		}
		if c.Expect == nil {
			return fmt.Errorf("sql check needs expect (the text the query must return)")
		}
	case TypeFingerprint:
		for _, name := range c.Exclude {
			if _, err := ParseTable(qualify(name)); err != nil {
				return fmt.Errorf("fingerprint check: exclude: %v", err)
			}
		}
	case TypeAmcheck:
		for _, name := range c.Tables {
			if _, err := QuoteTable(name); err != nil {
				return fmt.Errorf("amcheck check: tables: %v", err)
			}
		}
	case TypeDrift:
		if p := c.MaxShrinkPercent; p != nil && (*p < 0 || *p > 100) {
			return fmt.Errorf("drift check: max_shrink %g%% is not between 0%% and 100%%", *p)
		}
	case TypeCompare:
		if c.Table == "" {
			return fmt.Errorf("compare check needs table")
		}
		if c.SourceURL == "" {
			return fmt.Errorf("compare check needs source_url (a read-only connection to a replica, from the environment: ${VAR})")
		}
		if SourceDescription(c.SourceURL) == "" {
			return fmt.Errorf("compare check: source_url is not a valid PostgreSQL connection string, or its database name holds '@' or '/' (percent-encode them in the password: / as %%2F, @ as %%40)")
		}
		if c.MaxDifferences != nil && *c.MaxDifferences < 0 {
			return fmt.Errorf("compare check: max_differences must be 0 or more")
		}
	case "":
		return fmt.Errorf("check needs type (one of %s)", strings.Join(Types, ", "))
	default:
		return fmt.Errorf("unknown check type %q (want one of %s)", c.Type, strings.Join(Types, ", "))
	}
	return nil
}

// DefaultName derives a name for a check that has none, such as
// "row_count public.orders" or "recency public.orders.created_at".
func (c Check) DefaultName() string {
	switch c.Type {
	case TypeRecency:
		return c.Type + " " + c.Table + "." + c.Column
	case TypeFingerprint, TypeAmcheck, TypeDrift:
		return c.Type
	case TypeSQL:
		q := strings.Join(strings.Fields(c.Query), " ")
		if len(q) > 40 {
			q = q[:40] + "…"
		}
		return "sql " + q
	default:
		return c.Type + " " + c.Table
	}
}

// Expected renders what the check expects, for the run record.
func (c Check) Expected() string {
	switch c.Type {
	case TypeRowCount:
		switch {
		case c.Equals != nil:
			return fmt.Sprintf("= %d", *c.Equals)
		case c.Min != nil && c.Max != nil:
			return fmt.Sprintf("between %d and %d", *c.Min, *c.Max)
		case c.Min != nil:
			return fmt.Sprintf(">= %d", *c.Min)
		case c.Max != nil:
			return fmt.Sprintf("<= %d", *c.Max)
		}
	case TypeChecksum:
		if c.Expect != nil {
			return *c.Expect
		}
		return "every row readable (no expected value)"
	case TypeRecency:
		return "newest row at most " + c.MaxAge.String() + " older than the backup"
	case TypeSQL:
		if c.Expect != nil {
			return *c.Expect
		}
	case TypeFingerprint:
		e := "tables as fingerprinted"
		if len(c.Exclude) > 0 {
			e += " (but " + strings.Join(c.Exclude, ", ") + ")"
		}
		return e
	case TypeAmcheck:
		return "no corruption"
	case TypeDrift:
		return fmt.Sprintf("none gone or shrunk > %g%%", c.maxShrink())
	case TypeCompare:
		return fmt.Sprintf("at most %d rows differing from %s", c.maxDifferences(), c.Source)
	}
	return ""
}

func (c Check) maxShrink() float64 {
	if c.MaxShrinkPercent != nil {
		return *c.MaxShrinkPercent
	}
	return DefaultMaxShrinkPercent
}

// qualify puts an unqualified table name in schema public.
func qualify(name string) string {
	if parts, err := splitQualified(name); err == nil && len(parts) == 1 {
		return "public." + name
	}
	return name
}

// Result is the outcome of one check. Passed is true only when the check ran
// to completion and its value met the expectation.
type Result struct {
	Name     string        `json:"name"`
	Type     string        `json:"type"`
	Expected string        `json:"expected"`
	Actual   string        `json:"actual"`
	Passed   bool          `json:"passed"`
	Duration time.Duration `json:"-"`
	Error    string        `json:"error,omitempty"`
	// Newest is the newest value of a recency check's column.
	Newest *time.Time `json:"-"`
	// Details are per-table findings (fingerprint, amcheck, drift).
	Details []TableResult `json:"details,omitempty"`
	// Counted holds exact row counts the check made, by table name.
	Counted map[string]int64 `json:"-"`
}

// TableResult is one table's finding of a check.
type TableResult struct {
	Name string `json:"name"`
	// Status is match, differs, missing, unexpected, excluded, corrupt,
	// shrunk, gone or ok.
	Status           string `json:"status"`
	Rows             *int64 `json:"rows,omitempty"`
	ExpectedRows     *int64 `json:"expected_rows,omitempty"`
	Checksum         string `json:"checksum,omitempty"`
	ExpectedChecksum string `json:"expected_checksum,omitempty"`
	// Problem says what differs or what is wrong.
	Problem string `json:"problem,omitempty"`
}

// SQLText says what a check runs, for people: the query of an sql check,
// the statement behind the others.
func (c Check) SQLText() string {
	t := c.Table
	switch c.Type {
	case TypeRowCount:
		return "select count(*) from " + t
	case TypeChecksum:
		return "select count(*), sum(hash_record_extended(t.*, 0)) from " + t + " t  -- hashed from the text form for enums, json, …; folded to 64 bits"
	case TypeRecency:
		return "select max(" + c.Column + ")::timestamptz from " + t
	case TypeSQL:
		return c.Query
	case TypeFingerprint:
		return "per table: select count(*), sum(hash_record_extended(t.*, 0)) from only TABLE t; its columns, constraints and indexes from the catalog"
	case TypeAmcheck:
		return "bt_index_check(index, heapallindexed) on every B-tree index; verify_heapam(table) on every table"
	case TypeDrift:
		return "no query: the inventory of this restore against the last passing run's"
	case TypeCompare:
		w := ""
		if c.Where != "" {
			w = " where " + c.Where
		}
		return "on both sides, per range of 10,000 keys: select count(*), sum(hash_record_extended(t.*, 0)) from " + t + " t" + w +
			" and key ≤ the restored copy's largest; ranges that differ row by row (source: " + c.Source + ", read-only)"
	}
	return ""
}
