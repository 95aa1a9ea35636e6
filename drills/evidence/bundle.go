package evidence

import (
	"encoding/json"
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
)

// RunFile is runs/<id>.json: the sealed record, its place in the chain,
// and the sign-offs given since.
type RunFile struct {
	ID        int64            `json:"id"`
	Drill     string           `json:"drill"`
	Record    json.RawMessage  `json:"record"`
	PrevHash  string           `json:"prev_hash"`
	ChainHash string           `json:"chain_hash"`
	Signoffs  []drills.Signoff `json:"signoffs"`
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
}

// Filters are the export's selection, recorded in the manifest.
type Filters struct {
	Drill string `json:"drill,omitempty"`
	Since string `json:"since,omitempty"`
	Until string `json:"until,omitempty"`
}
