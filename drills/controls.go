package drills

import "strings"

// Control is a compliance control a restore drill evidences.
type Control struct {
	ID string `json:"id"`
	// Asks is what the control asks, in one line.
	Asks string `json:"asks"`
}

// KnownControls are the controls drill knows what they ask.
var KnownControls = []Control{
	{"SOC 2 A1.3", "Recovery plan procedures supporting system recovery are tested to help meet recovery objectives."},
	{"SOC 2 CC7.5", "Activities to recover from identified security incidents are developed, implemented and carried out."},
	{"ISO 27001 A.8.13", "Backup copies of information, software and systems are maintained and regularly tested."},
	{"ISO 27001 A.5.30", "ICT readiness for business continuity is planned, implemented, maintained and tested."},
	{"HIPAA 164.308(a)(7)(ii)(D)", "Procedures for periodic testing and revision of contingency plans are implemented."},
	{"PCI DSS 12.10.2", "The incident response plan, including recovery, is reviewed and tested at least once every 12 months."},
}

// DefaultControls are the controls a drill evidences unless it (or the
// config's evidence section) names others.
var DefaultControls = []string{"SOC 2 A1.3", "SOC 2 CC7.5", "ISO 27001 A.8.13", "ISO 27001 A.5.30", "HIPAA 164.308(a)(7)(ii)(D)", "PCI DSS 12.10.2"}

// ControlOf describes a control by its id, matched without regard to case
// and spacing ("iso 27001 a.8.13"); one drill does not know asks nothing.
func ControlOf(id string) Control {
	norm := func(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }
	for _, c := range KnownControls {
		if norm(c.ID) == norm(id) {
			return c
		}
	}
	return Control{ID: strings.Join(strings.Fields(id), " ")}
}

// ControlsOf are the controls a run with this policy evidences.
func (p Policy) ControlsOf() []string {
	if len(p.Controls) > 0 {
		return p.Controls
	}
	return DefaultControls
}
