package drills

import (
	"encoding/json"
	"time"

	"drill/verify"
)

// DefaultTimeout bounds one drill when the spec sets no timeout.
const DefaultTimeout = 2 * time.Hour

// Config is a parsed drill.yaml.
type Config struct {
	// Path is the file the config was read from.
	Path string `json:"-"`
	// DatabaseURL is the state database; empty means the embedded one.
	// It may hold a password: never log or render it.
	DatabaseURL string `json:"-"`
	// Notify are webhooks told about every drill's failures and overdue drills.
	Notify []Notify `json:"-"`
	// OverdueGrace is how long past one schedule period a drill may go
	// without success before it is overdue (default 1 day).
	OverdueGrace time.Duration `json:"overdue_grace"`
	Drills       []*Spec       `json:"drills"`
}

// DefaultOverdueGrace is the grace before a scheduled drill is overdue.
const DefaultOverdueGrace = 24 * time.Hour

// Notify is a webhook. Its URL is a secret (chat webhooks carry their
// credentials in the URL): it is never logged, stored or rendered.
type Notify struct {
	Webhook string
}

// Drill returns the drill called name, or nil.
func (c *Config) Drill(name string) *Spec {
	for _, s := range c.Drills {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Spec is one drill: where its backups are, where to restore them, what to
// verify and which objectives to meet.
type Spec struct {
	Name             string         `json:"name"`
	Schedule         string         `json:"schedule,omitempty"`
	ScheduleTimezone string         `json:"schedule_timezone,omitempty"`
	Timeout          time.Duration  `json:"-"`
	Source           SourceSpec     `json:"source"`
	Target           TargetSpec     `json:"target"`
	Objectives       Objectives     `json:"-"`
	Checks           []verify.Check `json:"checks"`
	// Notify are the webhooks of this drill, the config's own included.
	Notify []Notify `json:"-"`
	// Line is where the drill starts in its config file.
	Line int `json:"-"`
}

// SourceSpec says where a drill's backups are.
type SourceSpec struct {
	Type     string `json:"type"`
	Location string `json:"location,omitempty"`
	Pattern  string `json:"pattern,omitempty"`
	Region   string `json:"region,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
	// Instance is the RDS instance whose snapshots (rds-snapshot) or
	// point in time (rds-pitr) are restored.
	Instance      string   `json:"instance,omitempty"`
	SnapshotTypes []string `json:"snapshot_types,omitempty"`
	// RestoreTime is "latest" or an RFC 3339 time (rds-pitr).
	RestoreTime string `json:"restore_time,omitempty"`
}

// TargetSpec says where a drill restores to.
type TargetSpec struct {
	Type     string `json:"type"`
	RunAs    string `json:"run_as,omitempty"`
	Dir      string `json:"dir,omitempty"`
	Database string `json:"database,omitempty"`
	Jobs     int    `json:"jobs,omitempty"`
	// RDS targets.
	Region              string            `json:"region,omitempty"`
	InstanceClass       string            `json:"instance_class,omitempty"`
	SubnetGroup         string            `json:"subnet_group,omitempty"`
	AllowDefaultNetwork bool              `json:"allow_default_network,omitempty"`
	SecurityGroups      []string          `json:"security_groups,omitempty"`
	Tags                map[string]string `json:"tags,omitempty"`
	CABundle            string            `json:"ca_bundle,omitempty"`
	// PollInterval is the first wait between status checks (default 15s).
	PollInterval time.Duration `json:"poll_interval,omitempty"`
}

// Key identifies a target spec (for deduplication).
func (t TargetSpec) Key() string {
	b, _ := json.Marshal(t)
	return string(b)
}

// Objectives are the recovery objectives a drill must meet. Zero means none.
type Objectives struct {
	RTO time.Duration
	RPO time.Duration
}

// Source and target types known to the config file.
const (
	SourcePgdump      = "pgdump"
	SourceRDSSnapshot = "rds-snapshot"
	SourceRDSPITR     = "rds-pitr"
	TargetLocal       = "local"
	TargetRDS         = "rds"
)

var (
	sourceTypes = []string{SourcePgdump, SourceRDSSnapshot, SourceRDSPITR}
	targetTypes = []string{TargetLocal, TargetRDS}
)

// Check is a verification of a restored database (see package verify).
type Check = verify.Check

// CheckResult is the outcome of one Check.
type CheckResult = verify.Result
