// Package statedb is drill's state database: every SQL statement of it,
// its migrations, the sealing of finished runs and sign-offs. Its Store
// is the drills.Recorder the Runner writes each transition to, and what
// jobs, web, evidence and the commands read the history from.
package statedb

import (
	"context"
	"crypto/ed25519"
	"drill/drills"
	"drill/migrations"
	"drill/verify"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store keeps runs, phases, checks and targets in PostgreSQL. Every write is
// a short transaction of its own; nothing external happens inside one.
type Store struct {
	Pool *pgxpool.Pool
	// SealingKey, when set, signs every run's chain hash as it is sealed
	// (DRILL_SEALING_KEY). It is never stored in the database.
	SealingKey ed25519.PrivateKey
	// SealingPub checks seals when runs are read (default: SealingKey's
	// public half).
	SealingPub ed25519.PublicKey
	// PreviousSealingPubs are the keys the sealing key replaced
	// (DRILL_SEALING_PREVIOUS_PUBKEYS): runs they sealed still check.
	PreviousSealingPubs []ed25519.PublicKey
}

// SealKeys are the keys seals are checked with: the sealing key's and
// those it replaced; empty when no sealing key is set.
func (s *Store) SealKeys() drills.SealKeys {
	pub := s.sealingPub()
	if pub == nil {
		return drills.SealKeys{}
	}
	return drills.NewSealKeys(append([]ed25519.PublicKey{pub}, s.PreviousSealingPubs...)...)
}

// SealingPublicKey is the key seals are checked with, or nil.
func (s *Store) SealingPublicKey() ed25519.PublicKey { return s.sealingPub() }

// sealingPub is the key seals are checked with, or nil.
func (s *Store) sealingPub() ed25519.PublicKey {
	if s.SealingPub != nil {
		return s.SealingPub
	}
	if s.SealingKey != nil {
		return s.SealingKey.Public().(ed25519.PublicKey)
	}
	return nil
}

// ID returns the identity of this state database (see migration 002). It
// marks every instance, so that the sweeper of one installation never
// takes another's instances for orphans.
func (s *Store) ID(ctx context.Context) (string, error) {
	var id string
	if err := s.Pool.QueryRow(ctx, "select id::text from drill_store order by created_at limit 1").Scan(&id); err != nil {
		return "", fmt.Errorf("state database identity: %w", err)
	}
	return id, nil
}

// Options configures Open.
type Options struct {
	// StatementTimeout for every connection (default 30s).
	StatementTimeout time.Duration
	// MaxConns of the pool (default 8).
	MaxConns int32
	// Tracer, when set, sees every query (tests count them).
	Tracer pgx.QueryTracer
}

// Open connects to the state database at url. The url may carry a
// password: it never appears in errors.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("state database URL is invalid (want postgres://user:password@host:port/db or key=value form)")
	}
	if opts.Tracer != nil {
		cfg.ConnConfig.Tracer = opts.Tracer
	}
	if opts.StatementTimeout <= 0 {
		opts.StatementTimeout = 30 * time.Second
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 8
	}
	cfg.MaxConns = opts.MaxConns
	rp := cfg.ConnConfig.RuntimeParams
	rp["application_name"] = "drill"
	rp["statement_timeout"] = strconv.FormatInt(opts.StatementTimeout.Milliseconds(), 10)
	rp["idle_in_transaction_session_timeout"] = "60000"
	rp["TimeZone"] = "UTC"
	if pgo := os.Getenv("PGOPTIONS"); pgo != "" && rp["options"] == pgo && !strings.Contains(url, "options") {
		// The shell's PGOPTIONS (say, a search_path for psql) is not
		// the state database's: it would move drill's tables, splitting
		// the history. Options the URL gives are kept.
		delete(rp, "options")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("state database: %w", verify.RedactConnErr(err))
	}
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("state database %s:%d/%s unreachable: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, verify.RedactConnErr(err))
	}
	return &Store{Pool: pool}, nil
}

// Migrate applies pending migrations (the app's and river's).
func (s *Store) Migrate(ctx context.Context) (migrations.Result, error) {
	return migrations.Up(ctx, s.Pool)
}

// Close closes the pool.
func (s *Store) Close() { s.Pool.Close() }

// Querier is a pool, a connection or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Store) exec(ctx context.Context, what, sql string, args ...any) error {
	if _, err := s.Pool.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("record %s: %w", what, err)
	}
	return nil
}

// execOpen is exec for a write to a run still in progress: when the run
// has finished, nothing is written and the error wraps drills.ErrRunEnded.
func (s *Store) execOpen(ctx context.Context, what, sql string, args ...any) error {
	tag, err := s.Pool.Exec(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("record %s: %w", what, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("record %s: %w", what, drills.ErrRunEnded)
	}
	return nil
}

// openRun is the condition, on run id $1, that the run has not finished.
// The row is locked for share: a sweeper ending the run at that moment
// is waited for (and the condition read again after it), and one that
// comes later waits for this write, which its seal then covers.
const openRun = `exists (select 1 from drill_runs where id = $1 and finished_at is null for share)`

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
