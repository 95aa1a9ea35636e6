package drills

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SealedRecord is what a finished run is sealed as: its JSON record and
// the policy it ran under. Its JSON encoding (Go's, with struct fields in
// declaration order and map keys sorted) is the run's canonical form.
type SealedRecord struct {
	Run    RunJSON `json:"run"`
	Policy Policy  `json:"policy"`
}

// CanonicalRecord returns the canonical JSON of a run.
func CanonicalRecord(r *Run) ([]byte, error) {
	v := r.JSON()
	v.Integrity, v.IntegrityProblem, v.ChainHash = "", "", ""
	return json.Marshal(SealedRecord{Run: v, Policy: r.Policy})
}

// Integrity says whether a finished run's record can be trusted.
type Integrity string

const (
	// IntegritySealed: the columns match the sealed record, the record
	// its chain hash, and the chain hash carries a valid signature of the
	// sealing key drill was given.
	IntegritySealed Integrity = "sealed"
	// IntegrityChained: the columns match the record and the record its
	// chain hash, but no signature was checked (no sealing key then or
	// now, or another key): someone who can write to the state database
	// could have rewritten both.
	IntegrityChained Integrity = "chained"
	// IntegrityAltered: the columns, the record, the chain hash or the
	// signature disagree: the row was changed after the run was sealed.
	IntegrityAltered Integrity = "altered"
)

// SealState is a sealed run's place in its chain and its integrity.
type SealState struct {
	Record    []byte
	PrevHash  string
	ChainHash string
	Seal      string // base64 signature, or ""
	KeyID     string
	Integrity Integrity
	Problem   string // why it is altered
}

// SealMessage is what the sealing key signs for a run: its chain hash,
// which covers its record and, through the previous hash, its drill's
// whole history before it.
func SealMessage(chainHash string) []byte { return []byte("drill seal v1\n" + chainHash) }

// KeyID names a public key: the first 16 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// CheckSeal tells whether a signature seals chainHash under pub.
func CheckSeal(pub ed25519.PublicKey, chainHash, seal string) bool {
	sig, err := base64.StdEncoding.DecodeString(seal)
	return err == nil && len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, SealMessage(chainHash), sig)
}

// checkIntegrity sets r.Seal.Integrity from the run's columns (as loaded),
// its sealed record, its chain hash and its seal under pub (nil: none).
func checkIntegrity(r *Run, pub ed25519.PublicKey) {
	st := r.Seal
	if st == nil {
		return
	}
	st.Integrity, st.Problem = IntegrityChained, ""
	altered := func(why string) { st.Integrity, st.Problem = IntegrityAltered, why }
	cols, err := CanonicalRecord(r)
	switch h, herr := ChainHash(st.PrevHash, st.Record); {
	case err != nil || !bytes.Equal(cols, st.Record):
		altered("the state database's columns differ from the run's sealed record")
	case herr != nil || h != st.ChainHash:
		altered("the sealed record does not match its chain hash")
	case pub != nil && st.Seal != "" && st.KeyID == KeyID(pub):
		if !CheckSeal(pub, st.ChainHash, st.Seal) {
			altered("the seal does not match the chain hash: the record and its hash were rewritten")
		} else {
			st.Integrity = IntegritySealed
		}
	}
}

// ChainHash is hex(SHA-256(prev chain hash bytes || record)); the first run
// of a drill has no previous hash.
func ChainHash(prevHex string, record []byte) (string, error) {
	prev, err := hex.DecodeString(prevHex)
	if err != nil {
		return "", fmt.Errorf("previous chain hash %q is not hex", prevHex)
	}
	h := sha256.New()
	h.Write(prev)
	h.Write(record)
	return hex.EncodeToString(h.Sum(nil)), nil
}

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
	record, err := CanonicalRecord(run)
	if err != nil {
		return err
	}
	hash, err := ChainHash(prev, record)
	if err != nil {
		return err
	}
	var seal, keyID *string
	if s.SealingKey != nil {
		sig := base64.StdEncoding.EncodeToString(ed25519.Sign(s.SealingKey, SealMessage(hash)))
		id := KeyID(s.SealingKey.Public().(ed25519.PublicKey))
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
	Signoffs  []Signoff
}

// Signoff is a management review or a corrective note on a run.
type Signoff struct {
	Kind     string    `json:"kind"` // review or corrective
	SignedBy string    `json:"signed_by"`
	Note     string    `json:"note"`
	SignedAt time.Time `json:"signed_at"`
}

// Sign-off kinds.
const (
	SignoffReview     = "review"
	SignoffCorrective = "corrective"
)

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
	rows, err = s.Pool.Query(ctx, `select run_id, kind, signed_by, note, signed_at from drill_signoffs where run_id = any($1) order by id`, ids)
	if err != nil {
		return nil, nil, err
	}
	var runID int64
	var so Signoff
	_, err = pgx.ForEachRow(rows, []any{&runID, &so.Kind, &so.SignedBy, &so.Note, &so.SignedAt}, func() error {
		out[index[runID]].Signoffs = append(out[index[runID]].Signoffs, so)
		return nil
	})
	return out, anchors, err
}

func optTimeArg(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// AddSignoff records a sign-off on a finished run.
func (s *Store) AddSignoff(ctx context.Context, runID int64, so Signoff) (Signoff, error) {
	var finished *time.Time
	err := s.Pool.QueryRow(ctx, "select finished_at from drill_runs where id = $1", runID).Scan(&finished)
	if errors.Is(err, pgx.ErrNoRows) {
		return so, fmt.Errorf("%w: %d", ErrRunNotFound, runID)
	}
	if err != nil {
		return so, err
	}
	if finished == nil {
		return so, fmt.Errorf("run %d has not finished: sign off a finished run", runID)
	}
	err = s.Pool.QueryRow(ctx, `insert into drill_signoffs (run_id, kind, signed_by, note) values ($1, $2, $3, $4) returning signed_at`,
		runID, so.Kind, so.SignedBy, so.Note).Scan(&so.SignedAt)
	return so, err
}

// Sealed returns what the run's sealed record says: its status, reason and
// error as they were when it was sealed.
func (st *SealState) Sealed() (status Status, reason, errText string) {
	var rec SealedRecord
	if st == nil || json.Unmarshal(st.Record, &rec) != nil {
		return "", "", ""
	}
	if rec.Run.Error != nil {
		errText = *rec.Run.Error
	}
	return rec.Run.Status, rec.Run.Reason, errText
}
