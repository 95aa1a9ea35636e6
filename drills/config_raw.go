package drills

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"drill/verify"

	"go.yaml.in/yaml/v3"
)

// The raw* types mirror drill.yaml field for field; their yaml tags are the
// file's contract. Each rejects unknown keys and remembers its line.

type rawConfig struct {
	DatabaseURL  string      `yaml:"database_url"`
	Notify       []rawNotify `yaml:"notify"`
	OverdueGrace *Duration   `yaml:"overdue_grace"`
	Drills       []rawDrill  `yaml:"drills"`
	line         int
}

type rawNotify struct {
	Webhook string `yaml:"webhook"`
	line    int
}

func (r *rawNotify) UnmarshalYAML(n *yaml.Node) error {
	type plain rawNotify
	if err := strictKeys(n, plain{}, "a notify entry"); err != nil {
		return err
	}
	r.line = n.Line
	return n.Decode((*plain)(r))
}

// notifiers converts and validates notify entries.
func notifiers(raw []rawNotify, label string) ([]Notify, []Problem) {
	var out []Notify
	var ps []Problem
	for i, rn := range raw {
		u, err := url.Parse(rn.Webhook)
		switch {
		case rn.Webhook == "":
			ps = append(ps, Problem{rn.line, fmt.Sprintf("%snotify %d: missing required field webhook", label, i+1)})
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			ps = append(ps, Problem{rn.line, fmt.Sprintf("%snotify %d: webhook must be an http(s) URL", label, i+1)})
		default:
			out = append(out, Notify{Webhook: rn.Webhook})
		}
	}
	return out, ps
}

func (r *rawConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain rawConfig
	if err := strictKeys(n, plain{}, "the top level"); err != nil {
		return err
	}
	r.line = n.Line
	return n.Decode((*plain)(r))
}

type rawDrill struct {
	Name             string        `yaml:"name"`
	Schedule         string        `yaml:"schedule"`
	ScheduleTimezone string        `yaml:"schedule_timezone"`
	Timeout          *Duration     `yaml:"timeout"`
	Source           *rawSource    `yaml:"source"`
	Target           *rawTarget    `yaml:"target"`
	Objectives       rawObjectives `yaml:"objectives"`
	Checks           []rawCheck    `yaml:"checks"`
	Notify           []rawNotify   `yaml:"notify"`
	line             int
	keys             map[string]int
}

func (r *rawDrill) UnmarshalYAML(n *yaml.Node) error {
	type plain rawDrill
	if err := strictKeys(n, plain{}, "a drill"); err != nil {
		return err
	}
	if err := n.Decode((*plain)(r)); err != nil {
		return err
	}
	r.line, r.keys = n.Line, keyLines(n)
	return nil
}

type rawSource struct {
	Type          string   `yaml:"type"`
	Location      string   `yaml:"location"`
	Pattern       string   `yaml:"pattern"`
	Region        string   `yaml:"region"`
	Endpoint      string   `yaml:"endpoint"`
	Instance      string   `yaml:"instance"`
	SnapshotTypes []string `yaml:"snapshot_types"`
	RestoreTime   string   `yaml:"restore_time"`
	keys          map[string]int
}

func (r *rawSource) UnmarshalYAML(n *yaml.Node) error {
	type plain rawSource
	if err := strictKeys(n, plain{}, "source"); err != nil {
		return err
	}
	if err := n.Decode((*plain)(r)); err != nil {
		return err
	}
	r.keys = keyLines(n)
	return nil
}

type rawTarget struct {
	Type                string            `yaml:"type"`
	RunAs               string            `yaml:"run_as"`
	Dir                 string            `yaml:"dir"`
	Database            string            `yaml:"database"`
	Jobs                int               `yaml:"jobs"`
	Region              string            `yaml:"region"`
	InstanceClass       string            `yaml:"instance_class"`
	SubnetGroup         string            `yaml:"subnet_group"`
	AllowDefaultNetwork bool              `yaml:"allow_default_network"`
	SecurityGroups      []string          `yaml:"security_groups"`
	Tags                map[string]string `yaml:"tags"`
	CABundle            string            `yaml:"ca_bundle"`
	PollInterval        *Duration         `yaml:"poll_interval"`
	keys                map[string]int
}

func (r *rawTarget) UnmarshalYAML(n *yaml.Node) error {
	type plain rawTarget
	if err := strictKeys(n, plain{}, "target"); err != nil {
		return err
	}
	if err := n.Decode((*plain)(r)); err != nil {
		return err
	}
	r.keys = keyLines(n)
	return nil
}

type rawObjectives struct {
	RTO *Duration `yaml:"rto"`
	RPO *Duration `yaml:"rpo"`
}

func (r *rawObjectives) UnmarshalYAML(n *yaml.Node) error {
	type plain rawObjectives
	if err := strictKeys(n, plain{}, "objectives"); err != nil {
		return err
	}
	return n.Decode((*plain)(r))
}

type rawCheck struct {
	Type   string    `yaml:"type"`
	Name   string    `yaml:"name"`
	Table  string    `yaml:"table"`
	Column string    `yaml:"column"`
	Query  string    `yaml:"query"`
	Min    *int64    `yaml:"min"`
	Max    *int64    `yaml:"max"`
	Equals *int64    `yaml:"equals"`
	MaxAge *Duration `yaml:"max_age"`
	Expect *string   `yaml:"expect"`
	line   int
}

func (r *rawCheck) UnmarshalYAML(n *yaml.Node) error {
	type plain rawCheck
	if err := strictKeys(n, plain{}, "a check"); err != nil {
		return err
	}
	r.line = n.Line
	return n.Decode((*plain)(r))
}

// keyLines maps each key of a mapping to its line.
func keyLines(n *yaml.Node) map[string]int {
	m := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		m[n.Content[i].Value] = n.Content[i].Line
	}
	return m
}

// at returns the line of key, else of the parent key, else fallback.
func at(keys map[string]int, key string, fallback int) int {
	if l, ok := keys[key]; ok {
		return l
	}
	return fallback
}

// nameRE is the drill name rule. Names become parts of instance ids, so they
// also follow RDS's identifier rules: no double or trailing hyphen, and at
// most 40 characters.
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// ValidName checks a drill name against the rule of nameRE.
func ValidName(s string) error {
	switch {
	case !nameRE.MatchString(s):
		return fmt.Errorf("drill name %q: use lower-case letters, digits and hyphens, starting with a letter or digit", s)
	case len(s) > 40:
		return fmt.Errorf("drill name %q: at most 40 characters", s)
	case strings.Contains(s, "--") || strings.HasSuffix(s, "-"):
		return fmt.Errorf("drill name %q: no double hyphen and no hyphen at the end", s)
	}
	return nil
}

// spec converts and validates one drill; i is its index in the file.
func (r rawDrill) spec(i int) (*Spec, []Problem) {
	var ps []Problem
	add := func(line int, format string, args ...any) {
		label := fmt.Sprintf("drill %d", i+1)
		if r.Name != "" {
			label = fmt.Sprintf("drill %q", r.Name)
		}
		ps = append(ps, Problem{line, label + ": " + fmt.Sprintf(format, args...)})
	}
	s := &Spec{Name: r.Name, Schedule: r.Schedule, ScheduleTimezone: r.ScheduleTimezone, Timeout: DefaultTimeout, Line: r.line}
	if r.Name == "" {
		add(r.line, "missing required field name")
	} else if err := ValidName(r.Name); err != nil {
		add(at(r.keys, "name", r.line), "%v", err)
	}
	if r.Timeout != nil {
		s.Timeout = time.Duration(*r.Timeout)
	}
	if r.Objectives.RTO != nil {
		s.Objectives.RTO = time.Duration(*r.Objectives.RTO)
	}
	if r.Objectives.RPO != nil {
		s.Objectives.RPO = time.Duration(*r.Objectives.RPO)
	}
	if r.Schedule != "" {
		if _, err := ParseSchedule(r.Schedule, r.ScheduleTimezone); err != nil {
			key := "schedule"
			if strings.HasPrefix(err.Error(), "schedule_timezone") {
				key = "schedule_timezone"
			}
			add(at(r.keys, key, r.line), "%v", err)
		}
	} else if r.ScheduleTimezone != "" {
		add(at(r.keys, "schedule_timezone", r.line), "schedule_timezone without schedule")
	}
	label := "drill " + strconv.Quote(r.Name) + ": "
	if r.Name == "" {
		label = fmt.Sprintf("drill %d: ", i+1)
	}
	notify, nps := notifiers(r.Notify, label)
	s.Notify = notify
	ps = append(ps, nps...)
	if r.Source == nil {
		add(r.line, "missing required field source")
	} else {
		s.Source = SourceSpec{Type: r.Source.Type, Location: r.Source.Location, Pattern: r.Source.Pattern, Region: r.Source.Region,
			Endpoint: r.Source.Endpoint, Instance: r.Source.Instance, SnapshotTypes: r.Source.SnapshotTypes, RestoreTime: r.Source.RestoreTime}
		srcLine := at(r.keys, "source", r.line)
		switch r.Source.Type {
		case "":
			add(srcLine, "source: missing required field type (one of %s)", strings.Join(sourceTypes, ", "))
		case SourcePgdump:
			if r.Source.Location == "" {
				add(srcLine, "source: missing required field location (a file, a directory or s3://bucket/prefix/)")
			} else if kind := SpecialFile(r.Source.Location); kind != "" {
				add(at(r.Source.keys, "location", srcLine), "source: location %s is %s: drill reads backups from regular files and directories only", r.Source.Location, kind)
			}
		case SourceRDSSnapshot, SourceRDSPITR:
			if r.Source.Instance == "" {
				add(srcLine, "source: missing required field instance (the RDS instance identifier)")
			}
			for _, st := range r.Source.SnapshotTypes {
				if st != "automated" && st != "manual" {
					add(at(r.Source.keys, "snapshot_types", srcLine), "source: snapshot_types: %q is not automated or manual", st)
				}
			}
			if rt := r.Source.RestoreTime; rt != "" {
				if r.Source.Type != SourceRDSPITR {
					add(at(r.Source.keys, "restore_time", srcLine), "source: restore_time applies to rds-pitr only")
				} else if _, err := time.Parse(time.RFC3339, rt); rt != "latest" && err != nil {
					add(at(r.Source.keys, "restore_time", srcLine), "source: restore_time %q: want latest or an RFC 3339 time", rt)
				}
			}
		default:
			add(at(r.Source.keys, "type", srcLine), "source: unknown type %q (one of %s)", r.Source.Type, strings.Join(sourceTypes, ", "))
		}
	}
	s.Target = TargetSpec{Type: TargetLocal}
	if r.Target != nil {
		t := r.Target
		s.Target = TargetSpec{Type: t.Type, RunAs: t.RunAs, Dir: t.Dir, Database: t.Database, Jobs: t.Jobs, Region: t.Region,
			InstanceClass: t.InstanceClass, SubnetGroup: t.SubnetGroup, AllowDefaultNetwork: t.AllowDefaultNetwork,
			SecurityGroups: t.SecurityGroups, Tags: t.Tags, CABundle: t.CABundle}
		if t.PollInterval != nil {
			s.Target.PollInterval = time.Duration(*t.PollInterval)
		}
		if s.Target.Type == "" {
			s.Target.Type = TargetLocal
		}
		tgtLine := at(r.keys, "target", r.line)
		if !contains(targetTypes, s.Target.Type) {
			add(at(t.keys, "type", tgtLine), "target: unknown type %q (one of %s)", s.Target.Type, strings.Join(targetTypes, ", "))
		}
		if t.Jobs < 0 {
			add(at(t.keys, "jobs", tgtLine), "target: jobs must be at least 1")
		}
		if s.Target.Type == TargetRDS {
			if t.InstanceClass == "" {
				add(tgtLine, "target: missing required field instance_class (such as db.t4g.micro)")
			}
			if t.SubnetGroup == "" && !t.AllowDefaultNetwork {
				add(tgtLine, "target: missing required field subnet_group (an isolated DB subnet group; or allow_default_network: true to restore into the default VPC)")
			}
			for k := range t.Tags {
				if k == "ManagedBy" || strings.HasPrefix(k, "Drill") {
					add(at(t.keys, "tags", tgtLine), "target: tags: %q is drill's own tag", k)
				}
			}
		}
	}
	if r.Source != nil && contains(targetTypes, s.Target.Type) {
		rdsSource := s.Source.Type == SourceRDSSnapshot || s.Source.Type == SourceRDSPITR
		switch {
		case rdsSource && s.Target.Type != TargetRDS:
			add(at(r.keys, "target", r.line), "target: an %s source restores into an rds target (add target: {type: rds, ...})", s.Source.Type)
		case s.Source.Type == SourcePgdump && s.Target.Type == TargetRDS:
			add(at(r.keys, "target", r.line), "target: a pgdump source restores into a local target")
		}
	}
	names := map[string]int{}
	for j, rc := range r.Checks {
		c := verify.Check{Type: rc.Type, Name: rc.Name, Table: rc.Table, Column: rc.Column, Query: rc.Query,
			Min: rc.Min, Max: rc.Max, Equals: rc.Equals, Expect: rc.Expect}
		if rc.MaxAge != nil {
			c.MaxAge = time.Duration(*rc.MaxAge)
		}
		if err := c.Validate(); err != nil {
			add(rc.line, "check %d: %v", j+1, err)
		}
		if c.Name == "" {
			c.Name = c.DefaultName()
		}
		if line, dup := names[c.Name]; dup {
			add(rc.line, "check %d: duplicate check name %q (first at line %d); give one a name:", j+1, c.Name, line)
		}
		names[c.Name] = rc.line
		s.Checks = append(s.Checks, c)
	}
	return s, ps
}
