package drills

import (
	"encoding/json"
	"fmt"
	"time"

	"drill/verify"
)

// Status of a run.
type Status string

// Statuses. A run is queued, then running, then passed or failed.
const (
	StatusQueued  Status = "queued"
	StatusRunning Status = "running"
	StatusPassed  Status = "passed"
	StatusFailed  Status = "failed"
)

// Reason says why a run failed, for people and for alerting rules.
type Reason string

// Reasons a run failed.
const (
	ReasonNoBackup        Reason = "no_backup"
	ReasonLocateFailed    Reason = "locate_failed"
	ReasonProvisionFailed Reason = "provision_failed"
	ReasonRestoreFailed   Reason = "restore_failed"
	ReasonVerifyFailed    Reason = "verify_failed"
	ReasonCheckFailed     Reason = "check_failed"
	ReasonObjectiveMissed Reason = "objective_missed"
	ReasonTeardownFailed  Reason = "teardown_failed"
	ReasonTimeout         Reason = "timeout"
	ReasonInterrupted     Reason = "interrupted"
	// ReasonLost: a queued run no worker will carry out (its job is gone,
	// or it waited longer than its timeout).
	ReasonLost Reason = "lost"
)

// Phase is a step of a run.
type Phase string

// Phase names, in order.
const (
	PhaseLocate    Phase = "locate"
	PhaseProvision Phase = "provision"
	PhaseRestore   Phase = "restore"
	PhaseVerify    Phase = "verify"
	PhaseTeardown  Phase = "teardown"
)

// Trigger says what started a run.
type Trigger string

// Triggers: who started a run.
const (
	TriggerManual Trigger = "manual"
	// TriggerInit is drill init's restore: a run with no checks, kept in
	// the history but evidence of nothing (coverage and controls leave
	// it out).
	TriggerInit     Trigger = "init"
	TriggerSchedule Trigger = "schedule"
	TriggerAPI      Trigger = "api"
)

// Run is the record of one drill run.
type Run struct {
	ID          int64
	Drill       string
	Status      Status
	Reason      Reason
	Error       string
	Trigger     Trigger
	TriggeredBy string
	// DrillVersion and Host say what carried the run out (see Executor).
	DrillVersion string
	Host         string
	// RestoreLogSHA256 is the digest (LogDigest) of what the restore
	// programs printed; the log itself is kept beside the record.
	RestoreLogSHA256 string
	// Progress is the latest progress line of a run in progress, and when
	// it was written (not part of the record).
	Progress   string
	ProgressAt *time.Time
	// Policy is the drill's spec as it was when the run was created.
	Policy     Policy
	CreatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time
	Deadline   *time.Time
	Backup     *Backup
	RTO        *time.Duration
	RPO        *time.Duration
	DataRPO    *time.Duration
	Objectives Objectives
	RTOMet     *bool
	RPOMet     *bool
	Target     *TargetRecord
	Phases     []PhaseRecord
	Checks     []verify.Result
	// Tables is the inventory of the restored database (see verify.TableInfo).
	Tables []verify.TableInfo
	// HeartbeatAt is when the process carrying out the run last said it
	// was alive; WaitingUntil is set while the run sleeps on its target.
	HeartbeatAt  *time.Time
	WaitingUntil *time.Time
	// Seal is the run's place in its drill's hash chain and whether its
	// columns still say what was sealed (nil while it runs).
	Seal *SealState
	// Signoffs are the reviews and corrective notes given since (loaded
	// with a single run).
	Signoffs []Signoff
}

// Policy is what a run was asked to do, kept with the run for the record.
type Policy struct {
	Schedule         string         `json:"schedule,omitempty"`
	Timeout          string         `json:"timeout"`
	ObjectiveRTO     string         `json:"objective_rto,omitempty"`
	ObjectiveRPO     string         `json:"objective_rpo,omitempty"`
	Source           SourceSpec     `json:"source"`
	Target           TargetSpec     `json:"target"`
	Checks           []verify.Check `json:"checks"`
	ConfigFile       string         `json:"config_file,omitempty"`
	ToolVersion      string         `json:"tool_version,omitempty"`
	ScheduleTimezone string         `json:"schedule_timezone,omitempty"`
	// Controls are the compliance controls the run evidences, when the
	// drill names them (else DefaultControls).
	Controls []string `json:"controls,omitempty"`
}

// PolicyOf snapshots a spec for the run record.
func PolicyOf(s *Spec, configFile, version string) Policy {
	p := Policy{Schedule: s.Schedule, Timeout: s.Timeout.String(), Source: s.Source, Target: s.Target,
		Checks: s.Checks, ConfigFile: configFile, ToolVersion: version, ScheduleTimezone: s.ScheduleTimezone, Controls: s.Controls}
	if s.Objectives.RTO > 0 {
		p.ObjectiveRTO = s.Objectives.RTO.String()
	}
	if s.Objectives.RPO > 0 {
		p.ObjectiveRPO = s.Objectives.RPO.String()
	}
	return p
}

// Spec returns the spec a run with this policy carries out: the policy's
// source, target, checks, timeout and objectives, with the rest (name,
// notifications) from current, the drill as configured now. A run always
// executes the policy it recorded, whatever the config says by the time a
// worker picks it up.
func (p Policy) Spec(current *Spec) (*Spec, error) {
	s := *current
	s.Schedule, s.ScheduleTimezone = p.Schedule, p.ScheduleTimezone
	s.Source, s.Target, s.Checks = p.Source, p.Target, p.Checks
	var err error
	parse := func(v string) time.Duration {
		if v == "" || err != nil {
			return 0
		}
		var d time.Duration
		if d, err = time.ParseDuration(v); err != nil {
			err = fmt.Errorf("the run's recorded policy: %w", err)
		}
		return d
	}
	s.Timeout = parse(p.Timeout)
	s.Objectives = Objectives{RTO: parse(p.ObjectiveRTO), RPO: parse(p.ObjectiveRPO)}
	if s.Timeout <= 0 && err == nil {
		s.Timeout = DefaultTimeout
	}
	return &s, err
}

// TargetRecord is the stored record of a run's isolated instance.
type TargetRecord struct {
	ID         int64
	Type       string
	InstanceID string
	Details    map[string]string
	State      TargetState
	// BackendState is the backend's own state (Instance.State).
	BackendState json.RawMessage
	RecordedAt   time.Time
	CreatedAt    *time.Time
	TornDownAt   *time.Time
	DestroyError string
}

// TargetState is where a run's instance is in its life.
type TargetState string

// Target states.
const (
	TargetIntended      TargetState = "intended"
	TargetCreated       TargetState = "created"
	TargetDestroyed     TargetState = "destroyed"
	TargetKept          TargetState = "kept"
	TargetDestroyFailed TargetState = "destroy_failed"
)

// Instance rebuilds the Instance the record describes (without its DSN).
func (t TargetRecord) Instance(run *Run) Instance {
	return Instance{Type: t.Type, ID: t.InstanceID, RunID: run.ID, Drill: run.Drill, Details: t.Details, State: t.BackendState}
}

// PhaseRecord is the timing of one phase of a run.
type PhaseRecord struct {
	Name       Phase
	StartedAt  time.Time
	FinishedAt *time.Time
	Error      string
}

// Duration of the phase, or zero when it has not finished.
func (p PhaseRecord) Duration() time.Duration {
	if p.FinishedAt == nil {
		return 0
	}
	return p.FinishedAt.Sub(p.StartedAt)
}

// RestoredAfter is the time from the run's start to a restored copy (the
// end of a restore phase that succeeded), or nil. When a check fails
// there is no verified copy and no RTO, but this says how long the
// restore itself took.
func (r *Run) RestoredAfter() *time.Duration {
	if r.StartedAt == nil {
		return nil
	}
	for _, p := range r.Phases {
		if p.Name == PhaseRestore && p.FinishedAt != nil && p.Error == "" {
			d := p.FinishedAt.Sub(*r.StartedAt)
			return &d
		}
	}
	return nil
}
