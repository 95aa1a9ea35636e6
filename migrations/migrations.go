// Package migrations holds the app's schema as numbered SQL files and
// applies them, together with river's schema, to the state database.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed *.sql
var files embed.FS

// Migration is one numbered SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// All returns the embedded migrations in order.
func All() ([]Migration, error) {
	entries, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, name := range entries {
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number and an underscore", name)
		}
		sql, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(sql)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// Result says what Up applied.
type Result struct {
	Applied      []string `json:"applied"`
	RiverApplied []int    `json:"river_applied"`
}

// lockKey serialises migrations of concurrent drill processes.
const lockKey = 7_236_011_001

// Up applies pending app migrations, each in its own transaction, then
// river's. It holds an advisory lock meanwhile, so concurrent processes
// migrate one at a time.
func Up(ctx context.Context, pool *pgxpool.Pool) (Result, error) {
	var res Result
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return res, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "select pg_advisory_lock($1)", lockKey); err != nil {
		return res, fmt.Errorf("lock for migrations: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "select pg_advisory_unlock($1)", lockKey) //nolint:errcheck

	if _, err := conn.Exec(ctx, `create table if not exists drill_schema_migrations (
		version int primary key, name text not null, applied_at timestamptz not null default now())`); err != nil {
		return res, err
	}
	done := map[int]bool{}
	rows, err := conn.Query(ctx, "select version from drill_schema_migrations")
	if err != nil {
		return res, err
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return res, err
	}
	for _, v := range versions {
		done[v] = true
	}
	all, err := All()
	if err != nil {
		return res, err
	}
	for _, m := range all {
		if done[m.Version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "insert into drill_schema_migrations (version, name) values ($1, $2)", m.Version, m.Name)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("migration %s: %w", m.Name, err)
		}
		res.Applied = append(res.Applied, m.Name)
	}
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return res, err
	}
	rr, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return res, fmt.Errorf("river migrations: %w", err)
	}
	for _, v := range rr.Versions {
		res.RiverApplied = append(res.RiverApplied, v.Version)
	}
	return res, nil
}
