package statedb

import (
	"context"
	"crypto/ed25519"
	"drill/drills"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// seal stores the run's canonical record and its place in the drill's
// hash chain. It runs in the transaction that finishes the run; one run
// per drill is active at a time, so the previous sealed run is final.
func (s *Store) seal(ctx context.Context, tx pgx.Tx, runID int64, at time.Time) error {
	run, err := s.runQ(ctx, tx, runID)
	if err != nil {
		return err
	}
	var prev string
	err = tx.QueryRow(ctx, `select chain_hash from drill_runs where drill = $1 and id < $2 and chain_hash is not null
		order by id desc limit 1`, run.Drill, run.ID).Scan(&prev)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	record, err := drills.CanonicalRecord(run)
	if err != nil {
		return err
	}
	hash, err := drills.ChainHash(prev, record)
	if err != nil {
		return err
	}
	var seal, keyID *string
	if s.SealingKey != nil {
		sig := base64.StdEncoding.EncodeToString(ed25519.Sign(s.SealingKey, drills.SealMessage(hash)))
		id := drills.KeyID(s.SealingKey.Public().(ed25519.PublicKey))
		seal, keyID = &sig, &id
	}
	_, err = tx.Exec(ctx, `update drill_runs set record = $2, prev_hash = $3, chain_hash = $4, sealed_at = $5, seal = $6, seal_key_id = $7
		where id = $1`, runID, string(record), prev, hash, at, seal, keyID)
	return err
}

// Sealed is a sealed run as stored.
type Sealed struct {
	ID        int64
	Drill     string
	Record    []byte
	PrevHash  string
	ChainHash string
	Seal      string // base64 signature by the sealing key, or ""
	SealKeyID string
	StartedAt *time.Time
	Signoffs  []drills.Signoff
}

// SealedFilter selects sealed runs by drill and start time.
type SealedFilter struct {
	Drill        string
	Since, Until time.Time // zero: open
}

// SealedRuns returns sealed runs matching f in chain order (by drill, then
// id), with their sign-offs, and per drill the chain hash of the last
// sealed run before the first one returned (the anchor).
func (s *Store) SealedRuns(ctx context.Context, f SealedFilter) ([]Sealed, map[string]string, error) {
	rows, err := s.Pool.Query(ctx, `select id, drill, record, prev_hash, chain_hash, coalesce(seal, ''), coalesce(seal_key_id, ''), started_at from drill_runs
		where chain_hash is not null and ($1 = '' or drill = $1)
		  and ($2::timestamptz is null or started_at >= $2) and ($3::timestamptz is null or started_at < $3)
		order by drill, id`, f.Drill, optTimeArg(f.Since), optTimeArg(f.Until))
	if err != nil {
		return nil, nil, err
	}
	var out []Sealed
	var x Sealed
	var record string
	_, err = pgx.ForEachRow(rows, []any{&x.ID, &x.Drill, &record, &x.PrevHash, &x.ChainHash, &x.Seal, &x.SealKeyID, &x.StartedAt}, func() error {
		x.Record = []byte(record)
		out = append(out, x)
		x = Sealed{}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	anchors := map[string]string{}
	index := map[int64]int{}
	for i, r := range out {
		index[r.ID] = i
		if _, ok := anchors[r.Drill]; ok {
			continue
		}
		var prev string
		err := s.Pool.QueryRow(ctx, `select chain_hash from drill_runs where drill = $1 and id < $2 and chain_hash is not null
			order by id desc limit 1`, r.Drill, r.ID).Scan(&prev)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, nil, err
		}
		anchors[r.Drill] = prev
	}
	ids := make([]int64, 0, len(out))
	for _, r := range out {
		ids = append(ids, r.ID)
	}
	rows, err = s.Pool.Query(ctx, `select run_id, kind, signed_by, note, signed_at, coalesce(seal, ''), coalesce(seal_key_id, '')
		from drill_signoffs where run_id = any($1) order by id`, ids)
	if err != nil {
		return nil, nil, err
	}
	var runID int64
	var so drills.Signoff
	_, err = pgx.ForEachRow(rows, []any{&runID, &so.Kind, &so.SignedBy, &so.Note, &so.SignedAt, &so.Seal, &so.SealKeyID}, func() error {
		out[index[runID]].Signoffs = append(out[index[runID]].Signoffs, so)
		return nil
	})
	return out, anchors, err
}

// UnsealedFinished returns the ids of the finished runs matching f that
// have no sealed record: runs from before records were sealed, or rows
// whose record was removed (checkIntegrity tells which).
func (s *Store) UnsealedFinished(ctx context.Context, f SealedFilter) ([]int64, error) {
	rows, err := s.Pool.Query(ctx, `select id from drill_runs
		where (record is null or chain_hash is null) and status in (`+sqlPassed+`, `+sqlFailed+`) and ($1 = '' or drill = $1)
		  and ($2::timestamptz is null or started_at >= $2) and ($3::timestamptz is null or started_at < $3)
		order by id`, f.Drill, optTimeArg(f.Since), optTimeArg(f.Until))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

func optTimeArg(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// AddSignoff records a sign-off on a finished run, sealed with the
// sealing key when there is one.
func (s *Store) AddSignoff(ctx context.Context, runID int64, so drills.Signoff) (drills.Signoff, error) {
	var finished *time.Time
	var chainHash string
	var sealed bool
	err := s.Pool.QueryRow(ctx, "select finished_at, coalesce(chain_hash, ''), seal_key_id is not null from drill_runs where id = $1", runID).Scan(&finished, &chainHash, &sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return so, fmt.Errorf("%w: %d", drills.ErrRunNotFound, runID)
	}
	if err != nil {
		return so, err
	}
	if finished == nil {
		return so, fmt.Errorf("run %d has not finished: sign off a finished run", runID)
	}
	if sealed && s.SealingKey == nil {
		// unsealed, it would read as a sign-off written in by hand
		return so, fmt.Errorf("run %d is sealed: a sign-off on it is sealed too, and DRILL_SEALING_KEY is not set here", runID)
	}
	// The time is fixed here, at the database's precision, so that what is
	// signed is what is stored.
	so.SignedAt = time.Now().UTC().Truncate(time.Microsecond)
	so.Seal, so.SealKeyID = "", ""
	if s.SealingKey != nil {
		so.Seal = base64.StdEncoding.EncodeToString(ed25519.Sign(s.SealingKey, drills.SignoffMessage(runID, chainHash, so)))
		so.SealKeyID = drills.KeyID(s.SealingKey.Public().(ed25519.PublicKey))
	}
	_, err = s.Pool.Exec(ctx, `insert into drill_signoffs (run_id, kind, signed_by, note, signed_at, seal, seal_key_id)
		values ($1, $2, $3, $4, $5, nullif($6, ''), nullif($7, ''))`,
		runID, so.Kind, so.SignedBy, so.Note, so.SignedAt, so.Seal, so.SealKeyID)
	return so, err
}

// FirstRuns returns when each drill's first run started (or was created):
// since then it has been scheduled.
func (s *Store) FirstRuns(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.Pool.Query(ctx, `select drill, min(coalesce(started_at, created_at)) from drill_runs group by drill`)
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	var name string
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&name, &at}, func() error {
		out[name] = at
		return nil
	})
	return out, err
}
