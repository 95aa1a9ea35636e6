package drills

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"time"
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
	v.Integrity, v.IntegrityProblem, v.ChainHash, v.Signoffs = "", "", "", nil
	return json.Marshal(SealedRecord{Run: v, Policy: r.Policy})
}

// Integrity says whether a finished run's record can be trusted.
type Integrity string

const (
	// IntegritySealed: the columns match the sealed record, the record
	// its chain hash, and the chain hash carries a valid signature of the
	// sealing key drill was given or of one it replaced.
	IntegritySealed Integrity = "sealed"
	// IntegrityChained: the columns match the record and the record its
	// chain hash, but no signature was checked (no sealing key then or
	// now): someone who can write to the state database could have
	// rewritten both.
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

// SealKeys are the public keys seals are checked with, by key id: the
// sealing key's and those it replaced (DRILL_SEALING_PREVIOUS_PUBKEYS).
// Empty: no seal is checked.
type SealKeys map[string]ed25519.PublicKey

// NewSealKeys indexes keys by id; nil keys are left out.
func NewSealKeys(keys ...ed25519.PublicKey) SealKeys {
	ks := SealKeys{}
	for _, k := range keys {
		if k != nil {
			ks[KeyID(k)] = k
		}
	}
	return ks
}

// unknownKey says why a seal by a key nobody gave drill stands for nothing.
func unknownKey(id string) string {
	return fmt.Sprintf("sealed by key %s, which is neither the sealing key nor one it replaced (DRILL_SEALING_PREVIOUS_PUBKEYS): a seal that cannot be checked could have been made by anyone who can write to the state database", id)
}

// CheckIntegrity sets r.Seal.Integrity from the run's columns (as loaded),
// its sealed record, its chain hash, its seal and its sign-offs' seals.
// With keys, a seal must be a valid signature by one of them.
func CheckIntegrity(r *Run, keys SealKeys) {
	st := r.Seal
	if st == nil {
		return
	}
	st.Integrity, st.Problem = IntegrityChained, ""
	altered := func(why string) { st.Integrity, st.Problem = IntegrityAltered, why }
	cols, err := CanonicalRecord(r)
	pub, known := keys[st.KeyID]
	switch h, herr := ChainHash(st.PrevHash, st.Record); {
	case err != nil || !bytes.Equal(cols, st.Record) && !sameSealedFacts(cols, st.Record):
		altered("the state database's columns differ from the run's sealed record")
	case herr != nil || h != st.ChainHash:
		altered("the sealed record does not match its chain hash")
	case len(keys) == 0 || st.Seal == "":
	case !known:
		altered(unknownKey(st.KeyID))
	case !CheckSeal(pub, st.ChainHash, st.Seal):
		altered("the seal does not match the chain hash: the record and its hash were rewritten")
	default:
		st.Integrity = IntegritySealed
	}
	if st.Integrity != IntegrityAltered && len(keys) > 0 {
		if why := signoffProblem(r, keys); why != "" {
			altered(why)
		}
	}
}

// signoffProblem says which of a run's sign-offs cannot be trusted, or "".
// A sign-off on a sealed run was given while a sealing key was set up, so
// it must carry a valid seal of a known key.
func signoffProblem(r *Run, keys SealKeys) string {
	for i, so := range r.Signoffs {
		name := fmt.Sprintf("sign-off %d (%s by %s)", i+1, so.Kind, so.SignedBy)
		pub, known := keys[so.SealKeyID]
		switch {
		case so.Seal == "" && r.Seal.Integrity == IntegritySealed:
			return name + " carries no seal, though its run is sealed: it was not given through drill"
		case so.Seal == "":
		case !known:
			return name + " is " + unknownKey(so.SealKeyID)
		case !CheckSignoffSeal(pub, r.ID, r.Seal.ChainHash, so):
			return name + ": its seal does not match it: it was edited or moved from another run"
		}
	}
	return ""
}

// targetLifecycle are the fields of a run's target that legitimately
// change after the run is sealed: a kept instance discarded later, a
// failed teardown finished by the sweeper.
var targetLifecycle = []string{"state", "torn_down_at", "instance_hours", "details"}

// sameSealedFacts reports whether two canonical records agree on all but
// the target's lifecycle.
func sameSealedFacts(a, b []byte) bool {
	var ma, mb map[string]any
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil {
		return false
	}
	for _, m := range []map[string]any{ma, mb} {
		if run, ok := m["run"].(map[string]any); ok {
			if t, ok := run["target"].(map[string]any); ok {
				for _, k := range targetLifecycle {
					delete(t, k)
				}
			}
		}
	}
	return reflect.DeepEqual(ma, mb)
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

// Signoff is a management review or a corrective note on a run.
type Signoff struct {
	Kind     string    `json:"kind"` // review or corrective
	SignedBy string    `json:"signed_by"`
	Note     string    `json:"note"`
	SignedAt time.Time `json:"signed_at"`
	// Seal is the sealing key's signature of SignoffMessage, made as the
	// sign-off was given; empty when no sealing key was set.
	Seal      string `json:"seal,omitempty"`
	SealKeyID string `json:"seal_key_id,omitempty"`
}

// SignoffMessage is what the sealing key signs for a sign-off: the
// sign-off with its run's id and chain hash, so that it cannot be moved to
// another run or edited.
func SignoffMessage(runID int64, chainHash string, so Signoff) []byte {
	b, _ := json.Marshal(struct {
		RunID     int64  `json:"run_id"`
		ChainHash string `json:"chain_hash"`
		Kind      string `json:"kind"`
		SignedBy  string `json:"signed_by"`
		Note      string `json:"note"`
		SignedAt  string `json:"signed_at"`
	}{runID, chainHash, so.Kind, so.SignedBy, so.Note, so.SignedAt.UTC().Format(time.RFC3339Nano)})
	return append([]byte("drill signoff v1\n"), b...)
}

// CheckSignoffSeal tells whether so's seal is pub's signature of it on the
// run with runID and chainHash.
func CheckSignoffSeal(pub ed25519.PublicKey, runID int64, chainHash string, so Signoff) bool {
	sig, err := base64.StdEncoding.DecodeString(so.Seal)
	return err == nil && len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, SignoffMessage(runID, chainHash, so), sig)
}

// Sign-off kinds.
const (
	SignoffReview     = "review"
	SignoffCorrective = "corrective"
)

// Sealed returns what the run's sealed record says: its status, reason and
// error as they were when it was sealed.
func (st *SealState) Sealed() (status Status, reason Reason, errText string) {
	var rec SealedRecord
	if st == nil || json.Unmarshal(st.Record, &rec) != nil {
		return "", "", ""
	}
	if rec.Run.Error != nil {
		errText = *rec.Run.Error
	}
	return rec.Run.Status, rec.Run.Reason, errText
}
