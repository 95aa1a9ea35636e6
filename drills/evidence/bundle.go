package evidence

import (
	"encoding/json"
	"strconv"
	"time"

	"drill/drills"
)

// File names in a bundle.
const (
	ManifestFile  = "manifest.json"
	SignatureFile = "manifest.sig"
	CSVFile       = "runs.csv"
	ReportFile    = "report.html"
	runsDir       = "runs/"
	logsDir       = "logs/"
)

// LogFileName is where a run's restore log is in a bundle.
func LogFileName(id int64) string { return logsDir + strconv.FormatInt(id, 10) + ".log" }

// RunFile is runs/<id>.json: the sealed record, its place in the chain,
// and the sign-offs given since.
type RunFile struct {
	ID        int64           `json:"id"`
	Drill     string          `json:"drill"`
	Record    json.RawMessage `json:"record"`
	PrevHash  string          `json:"prev_hash"`
	ChainHash string          `json:"chain_hash"`
	// Seal is the sealing key's signature of drills.SealMessage(ChainHash),
	// made as the run finished; empty when no sealing key was set.
	Seal      string           `json:"seal,omitempty"`
	SealKeyID string           `json:"seal_key_id,omitempty"`
	Signoffs  []drills.Signoff `json:"signoffs"`
	// TargetAfterSeal is the instance as it is at export, when its life
	// went on after the run was sealed (a kept instance discarded, a
	// failed teardown finished by the sweeper). The seal does not cover it;
	// the manifest's signature does.
	TargetAfterSeal *drills.TargetJSON `json:"target_after_seal,omitempty"`
}

// Manifest lists every file of the bundle with its SHA-256.
type Manifest struct {
	Tool        string    `json:"tool"`
	ToolVersion string    `json:"tool_version"`
	GeneratedAt time.Time `json:"generated_at"`
	Filters     Filters   `json:"filters"`
	Runs        int       `json:"runs"`
	// ChainAnchors holds, per drill, the chain hash of the last run before
	// the bundle's first ("" when the bundle starts at the drill's first run).
	ChainAnchors map[string]string `json:"chain_anchors"`
	Files        map[string]string `json:"files"` // name → hex SHA-256
	Signed       bool              `json:"signed"`
	// SealingPublicKey (PKIX PEM) checks the runs' seals; set when the
	// exporting drill had the sealing key (DRILL_SEALING_KEY).
	SealingPublicKey string `json:"sealing_public_key,omitempty"`
	SealingKeyID     string `json:"sealing_key_id,omitempty"`
	// SealingPreviousPublicKeys (PEM) are the keys the sealing key
	// replaced (DRILL_SEALING_PREVIOUS_PUBKEYS): older runs' seals check
	// with them.
	SealingPreviousPublicKeys []string `json:"sealing_previous_public_keys,omitempty"`
	// Altered lists the runs whose rows in the state database no longer
	// say what was sealed (the bundle holds the sealed records).
	Altered []AlteredRun `json:"altered_runs,omitempty"`
	// SigningKeyID names the key that signed the manifest (drills.KeyID).
	SigningKeyID string `json:"signing_key_id,omitempty"`
	// Coverage says, per scheduled drill and schedule period in the
	// export's window, whether it was drilled (passed, failed, missing,
	// open); Controls which runs evidence each control.
	Coverage []Coverage        `json:"coverage"`
	Controls []ControlEvidence `json:"controls"`
}

// ControlEvidence is a control and the runs in the bundle that evidence it.
type ControlEvidence struct {
	drills.Control
	Runs   []int64 `json:"runs"`
	Passed []int64 `json:"passed"`
}

// AlteredRun is a run whose state-database row was changed after sealing.
type AlteredRun struct {
	ID      int64  `json:"id"`
	Drill   string `json:"drill"`
	Problem string `json:"problem"`
}

// Filters are the export's selection, recorded in the manifest.
type Filters struct {
	Drill string `json:"drill,omitempty"`
	Since string `json:"since,omitempty"`
	Until string `json:"until,omitempty"`
}
