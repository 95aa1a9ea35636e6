package verify

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Suggestion is a check drill init proposes, with why.
type Suggestion struct {
	Check Check
	Why   string
}

// suggestTables is how many of the largest tables get checks of their own.
const suggestTables = 5

// timeColumns are the names a table's "when was this row written" column
// usually has, best first.
var timeColumns = []string{"created_at", "inserted_at", "updated_at", "modified_at", "created", "updated", "timestamp", "ts", "occurred_at", "event_time"}

// Suggest looks at a restored database and proposes checks that pass on
// it: a row_count per large table (at least half its rows), a recency
// check per large table with an obvious timestamp column (its newest row's
// age at backup time, with a day to spare), a fingerprint check when the
// backup has a fingerprint (else a checksum of the largest table), amcheck
// and drift.
func Suggest(ctx context.Context, conn *pgx.Conn, inventory []TableInfo, backupAt time.Time, fingerprinted bool) ([]Suggestion, error) {
	tables := append([]TableInfo(nil), inventory...)
	sort.SliceStable(tables, func(i, j int) bool { return tables[i].Bytes > tables[j].Bytes })
	if len(tables) > suggestTables {
		tables = tables[:suggestTables]
	}
	var out []Suggestion
	for _, t := range tables {
		if t.Rows < 1 {
			continue
		}
		min := t.Rows / 2
		how := "estimated"
		if t.RowsExact {
			how = "counted"
		}
		out = append(out, Suggestion{Check{Type: TypeRowCount, Table: t.Name, Min: &min},
			fmt.Sprintf("%s held %s (%s) in the backup drill init restored; fail if fewer than half come back", t.Name, Plural(int(t.Rows), "row"), how)})
	}
	for _, t := range tables {
		s, err := suggestRecency(ctx, conn, t, backupAt)
		if err != nil {
			return nil, err
		}
		if s != nil {
			out = append(out, *s)
		}
	}
	if fingerprinted {
		out = append(out, Suggestion{Check{Type: TypeFingerprint}, "the backup has a fingerprint (drill dump): every table must come back with the same rows"})
	} else if len(tables) > 0 {
		out = append(out, Suggestion{Check{Type: TypeChecksum, Table: tables[0].Name},
			"every row of the largest table must be readable; back up with drill dump and use {type: fingerprint} to compare every table with production"})
	}
	out = append(out,
		Suggestion{Check{Type: TypeAmcheck}, "no corrupt index or table page"},
		Suggestion{Check{Type: TypeDrift, MaxShrinkPercent: ptr(DefaultMaxShrinkPercent)}, "no table gone, none shrunk by more than 10% since the last passing drill"})
	return out, nil
}

func ptr[T any](v T) *T { return &v }

// suggestRecency finds the table's timestamp column with the best name and
// proposes a recency check that its newest row passes.
func suggestRecency(ctx context.Context, conn *pgx.Conn, t TableInfo, backupAt time.Time) (*Suggestion, error) {
	tbl, err := ParseTable(t.Name)
	if err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, `select attname from pg_catalog.pg_attribute
		where attrelid = $1::pg_catalog.regclass and attnum > 0 and not attisdropped
		  and atttypid in ('pg_catalog.timestamptz'::pg_catalog.regtype, 'pg_catalog.timestamp'::pg_catalog.regtype, 'pg_catalog.date'::pg_catalog.regtype)`, tbl.Quoted())
	if err != nil {
		return nil, err
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	best, rank := "", len(timeColumns)
	for _, c := range cols {
		for i, name := range timeColumns {
			if strings.EqualFold(c, name) && i < rank {
				best, rank = c, i
			}
		}
	}
	if best == "" || backupAt.IsZero() {
		return nil, nil
	}
	var newest *time.Time
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "select pg_catalog.max("+pgx.Identifier{best}.Sanitize()+")::timestamptz from "+tbl.Quoted()).Scan(&newest)
	})
	if err != nil || newest == nil {
		return nil, err
	}
	age := max(backupAt.Sub(*newest), 0)
	maxAge := time.Duration(math.Ceil((age + 24*time.Hour).Hours())) * time.Hour
	return &Suggestion{Check{Type: TypeRecency, Table: t.Name, Column: best, MaxAge: maxAge},
		fmt.Sprintf("its newest %s was %s before the backup; a day to spare", best, age.Round(time.Minute))}, nil
}
