package drills

import (
	"drill/verify"
	"encoding/json"
	"math"
	"time"
)

// RunJSON is the JSON shape of a run, shared by `--json` and the API.
type RunJSON struct {
	ID           int64   `json:"id"`
	Drill        string  `json:"drill"`
	Status       Status  `json:"status"`
	Reason       Reason  `json:"reason,omitempty"`
	Trigger      Trigger `json:"trigger"`
	TriggeredBy  string  `json:"triggered_by,omitempty"`
	DrillVersion string  `json:"drill_version,omitempty"`
	Host         string  `json:"host,omitempty"`
	// RestoreLogSHA256 is the digest of the restore log (logs/ID.log in
	// an evidence bundle).
	RestoreLogSHA256 string         `json:"restore_log_sha256,omitempty"`
	CreatedAt        string         `json:"created_at"`
	StartedAt        *string        `json:"started_at"`
	FinishedAt       *string        `json:"finished_at"`
	RTOSeconds       *float64       `json:"rto_seconds"`
	RPOSeconds       *float64       `json:"rpo_seconds"`
	DataRPOSeconds   *float64       `json:"data_rpo_seconds"`
	Objectives       ObjectivesJSON `json:"objectives"`
	Backup           *BackupJSON    `json:"backup"`
	Target           *TargetJSON    `json:"target"`
	Phases           []PhaseJSON    `json:"phases"`
	Checks           []CheckJSON    `json:"checks"`
	// Tables is the inventory of the restored database.
	Tables []verify.TableInfo `json:"tables,omitempty"`
	Error  *string            `json:"error"`
	// Integrity, ChainHash and IntegrityProblem tell whether the record
	// still says what was sealed (see SealState); not part of the sealed
	// record itself.
	Integrity        Integrity `json:"integrity,omitempty"`
	IntegrityProblem string    `json:"integrity_problem,omitempty"`
	ChainHash        string    `json:"chain_hash,omitempty"`
	// Signoffs came after the seal, and are not part of it.
	Signoffs []Signoff `json:"signoffs,omitempty"`
}

// ObjectivesJSON holds the objectives and whether they were met (null: not measured or no objective).
type ObjectivesJSON struct {
	RTOSeconds *float64 `json:"rto_seconds"`
	RPOSeconds *float64 `json:"rpo_seconds"`
	RTOMet     *bool    `json:"rto_met"`
	RPOMet     *bool    `json:"rpo_met"`
}

// BackupJSON describes the restored backup.
type BackupJSON struct {
	ID              string            `json:"id"`
	CreatedAt       string            `json:"created_at"`
	CreatedAtSource string            `json:"created_at_source,omitempty"`
	Format          string            `json:"format,omitempty"`
	SizeBytes       int64             `json:"size_bytes,omitempty"`
	Details         map[string]string `json:"details,omitempty"`
	SHA256          string            `json:"sha256,omitempty"`
	Selection       *Selection        `json:"selection,omitempty"`
	// RecoveredTo is the recovery point of a physical backup: the time of
	// the last transaction replayed, which the RPO is measured from.
	RecoveredTo *string `json:"recovered_to,omitempty"`
}

// TargetJSON describes the isolated instance.
type TargetJSON struct {
	Type       string            `json:"type"`
	ID         string            `json:"id"`
	State      TargetState       `json:"state"`
	Details    map[string]string `json:"details,omitempty"`
	CreatedAt  *string           `json:"created_at,omitempty"`
	TornDownAt *string           `json:"torn_down_at"`
	// InstanceHours is how long the instance existed (cost visibility).
	InstanceHours *float64 `json:"instance_hours,omitempty"`
}

// PhaseJSON is one timed phase.
type PhaseJSON struct {
	Name            Phase    `json:"name"`
	StartedAt       string   `json:"started_at"`
	FinishedAt      *string  `json:"finished_at"`
	DurationSeconds *float64 `json:"duration_seconds"`
	Error           *string  `json:"error"`
}

// CheckJSON is one check result.
type CheckJSON struct {
	Name            string  `json:"name"`
	Type            string  `json:"type"`
	Expected        string  `json:"expected"`
	Actual          string  `json:"actual"`
	Passed          bool    `json:"passed"`
	DurationSeconds float64 `json:"duration_seconds"`
	Error           *string `json:"error"`
	// Details are per-table findings (fingerprint, amcheck, drift).
	Details []verify.TableResult `json:"details,omitempty"`
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// OptRFC3339 renders a time as RFC 3339 in UTC, or nil: the JSON form of
// an optional time.
func OptRFC3339(t *time.Time) *string { return optTime(t) }

func optTime(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := rfc3339(*t)
	return &s
}

// OptSeconds is d in seconds, rounded to milliseconds, or nil: how a
// measured duration is recorded and shown.
func OptSeconds(d *time.Duration) *float64 {
	if d == nil {
		return nil
	}
	s := seconds(*d)
	return &s
}

// seconds rounds to milliseconds: finer digits are noise in a drill.
func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// ObjectiveSeconds is an objective in seconds, or nil when there is none.
func ObjectiveSeconds(d time.Duration) *float64 {
	if d <= 0 {
		return nil
	}
	s := d.Seconds()
	return &s
}

// JSON returns the run in its JSON shape.
func (r *Run) JSON() RunJSON {
	v := RunJSON{ID: r.ID, Drill: r.Drill, Status: r.Status, Reason: r.Reason, Trigger: r.Trigger, TriggeredBy: r.TriggeredBy, DrillVersion: r.DrillVersion, Host: r.Host, RestoreLogSHA256: r.RestoreLogSHA256,
		CreatedAt: rfc3339(r.CreatedAt), StartedAt: optTime(r.StartedAt), FinishedAt: optTime(r.FinishedAt),
		RTOSeconds: OptSeconds(r.RTO), RPOSeconds: OptSeconds(r.RPO), DataRPOSeconds: OptSeconds(r.DataRPO),
		Objectives: ObjectivesJSON{RTOSeconds: ObjectiveSeconds(r.Objectives.RTO), RPOSeconds: ObjectiveSeconds(r.Objectives.RPO),
			RTOMet: r.RTOMet, RPOMet: r.RPOMet},
		Phases: []PhaseJSON{}, Checks: []CheckJSON{}, Error: optString(r.Error)}
	if r.Seal != nil {
		v.Integrity, v.IntegrityProblem, v.ChainHash = r.Seal.Integrity, r.Seal.Problem, r.Seal.ChainHash
	}
	v.Signoffs = r.Signoffs
	if b := r.Backup; b != nil {
		v.Backup = &BackupJSON{ID: b.ID, CreatedAt: rfc3339(b.CreatedAt), CreatedAtSource: b.CreatedAtSource, Format: b.Format, SizeBytes: b.SizeBytes, Details: b.Details, SHA256: b.SHA256, Selection: b.Selection}
		if b.RecoveredTo != nil {
			at := rfc3339(*b.RecoveredTo)
			v.Backup.RecoveredTo = &at
		}
	}
	if t := r.Target; t != nil {
		v.Target = &TargetJSON{Type: t.Type, ID: t.InstanceID, State: t.State, Details: t.Details, CreatedAt: optTime(t.CreatedAt), TornDownAt: optTime(t.TornDownAt)}
		if t.TornDownAt != nil && !t.RecordedAt.IsZero() { // from just before creation to teardown
			h := math.Round(t.TornDownAt.Sub(t.RecordedAt).Hours()*1000) / 1000
			v.Target.InstanceHours = &h
		}
	}
	for _, p := range r.Phases {
		pj := PhaseJSON{Name: p.Name, StartedAt: rfc3339(p.StartedAt), FinishedAt: optTime(p.FinishedAt), Error: optString(p.Error)}
		if p.FinishedAt != nil {
			d := seconds(p.Duration())
			pj.DurationSeconds = &d
		}
		v.Phases = append(v.Phases, pj)
	}
	for _, c := range r.Checks {
		v.Checks = append(v.Checks, CheckJSON{Name: c.Name, Type: c.Type, Expected: c.Expected, Actual: c.Actual,
			Passed: c.Passed, DurationSeconds: seconds(c.Duration), Error: optString(c.Error), Details: c.Details})
	}
	v.Tables = r.Tables
	return v
}

// MarshalJSON renders the run in its JSON shape.
func (r *Run) MarshalJSON() ([]byte, error) { return json.Marshal(r.JSON()) }
