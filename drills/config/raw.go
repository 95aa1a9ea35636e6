package config

import (
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"drill/drills"
	"drill/verify"

	"go.yaml.in/yaml/v3"
)

// The raw* types mirror drill.yaml field for field; their yaml tags are the
// file's contract. Each rejects unknown keys and remembers its line.

type rawConfig struct {
	DatabaseURL  string      `yaml:"database_url"`
	Notify       []rawNotify `yaml:"notify"`
	OverdueGrace *Duration   `yaml:"overdue_grace"`
	Evidence     rawEvidence `yaml:"evidence"`
	Drills       []rawDrill  `yaml:"drills"`
	line         int
}

// rawEvidence configures what evidence bundles say.
type rawEvidence struct {
	// Controls every drill evidences unless it names its own.
	Controls []string `yaml:"controls"`
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
func notifiers(raw []rawNotify, label string) ([]drills.Notify, []Problem) {
	var out []drills.Notify
	var ps []Problem
	for i, rn := range raw {
		u, err := url.Parse(rn.Webhook)
		switch {
		case rn.Webhook == "":
			ps = append(ps, Problem{rn.line, fmt.Sprintf("%snotify %d: missing required field webhook", label, i+1)})
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			ps = append(ps, Problem{rn.line, fmt.Sprintf("%snotify %d: webhook must be an http(s) URL", label, i+1)})
		default:
			out = append(out, drills.Notify{Webhook: rn.Webhook})
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
	Source           *rawSection   `yaml:"source"`
	Target           *rawSection   `yaml:"target"`
	Objectives       rawObjectives `yaml:"objectives"`
	Checks           []rawCheck    `yaml:"checks"`
	Notify           []rawNotify   `yaml:"notify"`
	Tags             []string      `yaml:"tags"`
	Controls         []string      `yaml:"controls"`
	VerifyJobs       *int          `yaml:"verify_jobs"`
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

// rawSection is a source: or target: mapping: its type, and the node its
// backend's settings are decoded from.
type rawSection struct {
	Type string
	node *yaml.Node
	keys map[string]int
}

func (r *rawSection) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return &lineError{n.Line, "want a mapping with a type: key"}
	}
	var head struct {
		Type string `yaml:"type"`
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "type" {
			if err := n.Content[i+1].Decode(&head.Type); err != nil {
				return err
			}
		}
	}
	r.Type, r.node, r.keys = head.Type, n, keyLines(n)
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
	// fingerprint, amcheck and drift checks
	Exclude        []string `yaml:"exclude"`
	Tables         []string `yaml:"tables"`
	HeapAllIndexed *bool    `yaml:"heapallindexed"`
	MaxShrink      *Percent `yaml:"max_shrink"`
	// compare checks
	SourceURL      string `yaml:"source_url"`
	Key            string `yaml:"key"`
	Where          string `yaml:"where"`
	MaxDifferences *int64 `yaml:"max_differences"`
	line           int
	keys           map[string]int // key → line
}

func (r *rawCheck) UnmarshalYAML(n *yaml.Node) error {
	type plain rawCheck
	if err := strictKeys(n, plain{}, "a check"); err != nil {
		return err
	}
	r.line, r.keys = n.Line, keyLines(n)
	return n.Decode((*plain)(r))
}

// checkFields are the keys each check type reads besides type and name:
// a key of another type's is refused, never silently ignored (a checksum
// "pinned" with equals would pass whatever the data).
var checkFields = map[string][]string{
	verify.TypeRowCount:    {"table", "min", "max", "equals"},
	verify.TypeChecksum:    {"table", "expect"},
	verify.TypeRecency:     {"table", "column", "max_age"},
	verify.TypeSQL:         {"query", "expect"},
	verify.TypeFingerprint: {"exclude"},
	verify.TypeAmcheck:     {"tables", "heapallindexed"},
	verify.TypeDrift:       {"max_shrink"},
	verify.TypeCompare:     {"table", "source_url", "key", "where", "max_differences"},
}

// foreignFields reports the keys of rc its type does not read.
func (rc rawCheck) foreignFields(add adder, j int) {
	fields, known := checkFields[rc.Type]
	if !known {
		return // an unknown type is reported on its own
	}
	keys := make([]string, 0, len(rc.keys))
	for k := range rc.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k != "type" && k != "name" && !slices.Contains(fields, k) {
			add(rc.keys[k], "check %d: %s is not a field of %s checks (theirs: %s)", j+1, k, rc.Type, strings.Join(append([]string{"name"}, fields...), ", "))
		}
	}
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

// spec converts and validates one drill; i is its index in the file.
func (r rawDrill) spec(i int) (*drills.Spec, []Problem) {
	var ps []Problem
	add := func(line int, format string, args ...any) {
		label := fmt.Sprintf("drill %d", i+1)
		if r.Name != "" {
			label = fmt.Sprintf("drill %q", r.Name)
		}
		ps = append(ps, Problem{line, label + ": " + fmt.Sprintf(format, args...)})
	}
	s := &drills.Spec{Name: r.Name, Schedule: r.Schedule, ScheduleTimezone: r.ScheduleTimezone, Timeout: drills.DefaultTimeout, Line: r.line, Tags: r.Tags, Controls: r.Controls}
	if r.Name == "" {
		add(r.line, "missing required field name")
	} else if err := drills.ValidName(r.Name); err != nil {
		add(at(r.keys, "name", r.line), "%v", err)
	}
	if r.VerifyJobs != nil {
		s.VerifyJobs = *r.VerifyJobs
		if s.VerifyJobs < 1 || s.VerifyJobs > 64 {
			add(at(r.keys, "verify_jobs", r.line), "verify_jobs %d: must be between 1 and 64", s.VerifyJobs)
		}
	}
	if r.Timeout != nil {
		s.Timeout = time.Duration(*r.Timeout)
		if s.Timeout < time.Second || s.Timeout > MaxTimeout {
			add(at(r.keys, "timeout", r.line), "timeout %s: must be between 1s and 7d", s.Timeout)
		}
	}
	if r.Objectives.RTO != nil {
		s.Objectives.RTO = time.Duration(*r.Objectives.RTO)
	}
	if r.Objectives.RPO != nil {
		s.Objectives.RPO = time.Duration(*r.Objectives.RPO)
	}
	if r.Schedule != "" {
		if _, err := drills.ParseSchedule(r.Schedule, r.ScheduleTimezone); err != nil {
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
		s.Source = drills.SourceSpec{Type: r.Source.Type}
	}
	s.Target = drills.TargetSpec{Type: drills.DefaultTargetType}
	if r.Target != nil {
		s.Target.Type = r.Target.Type
		if s.Target.Type == "" {
			s.Target.Type = drills.DefaultTargetType
		}
	}
	r.sections(s, add)
	s.Checks = r.checks(add)
	return s, ps
}

// MaxTimeout is the longest a drill may run: a week.
const MaxTimeout = 7 * 24 * time.Hour

// adder reports a problem at a line of the file.
type adder func(line int, format string, args ...any)

// sections decodes the source: and target: sections into the settings of
// their backends, which then check them, once both types are known (some
// rules span both).
func (r rawDrill) sections(s *drills.Spec, add adder) {
	// Each backend decodes and checks its own section, once both types
	// are known (some rules span both).
	var validators []func()
	resolved := true // both types known: rules across sections apply
	for _, sec := range []struct {
		kind, key string
		raw       *rawSection
		spec      *drills.BackendSpec
	}{{drills.KindSource, "source", r.Source, &s.Source}, {drills.KindTarget, "target", r.Target, &s.Target}} {
		if sec.raw == nil && sec.kind == drills.KindSource {
			continue
		}
		line := at(r.keys, sec.key, r.line)
		be, ok := drills.Lookup(sec.kind, sec.spec.Type)
		switch {
		case sec.spec.Type == "":
			add(line, "%s: missing required field type (one of %s)", sec.key, strings.Join(drills.Types(sec.kind), ", "))
			resolved = false
			continue
		case !ok:
			l := line
			if sec.raw != nil {
				l = at(sec.raw.keys, "type", line)
			}
			add(l, "%s: unknown type %q (one of %s)", sec.key, sec.spec.Type, strings.Join(drills.Types(sec.kind), ", "))
			resolved = false
			continue
		}
		settings := be.Settings()
		if sec.raw != nil {
			if err := decodeSection(sec.raw.node, settings, sec.key); err != nil {
				for _, p := range sectionProblems(err, line) {
					add(p.Line, "%s", p.Msg)
				}
				continue
			}
		}
		sec.spec.Settings = reflect.ValueOf(settings).Elem().Interface()
		v, ok := settings.(drills.Validator)
		if !ok {
			continue
		}
		keys := map[string]int{}
		if sec.raw != nil {
			keys = sec.raw.keys
		}
		key := sec.key
		validators = append(validators, func() {
			for _, p := range v.Validate(s) {
				if p.DrillKey != "" {
					if resolved && r.Source != nil {
						add(at(r.keys, p.DrillKey, r.line), "%s: %s", p.DrillKey, p.Msg)
					}
					continue
				}
				add(at(keys, p.Key, line), "%s: %s", key, p.Msg)
			}
		})
	}
	for _, validate := range validators {
		validate()
	}
}

// checks converts and validates the checks, naming unnamed ones.
func (r rawDrill) checks(add adder) []verify.Check {
	var out []verify.Check
	names := map[string]int{}
	for j, rc := range r.Checks {
		c := verify.Check{Type: rc.Type, Name: rc.Name, Table: rc.Table, Column: rc.Column, Query: rc.Query,
			Min: rc.Min, Max: rc.Max, Equals: rc.Equals, Expect: rc.Expect,
			Exclude: rc.Exclude, Tables: rc.Tables, HeapAllIndexed: rc.HeapAllIndexed,
			SourceURL: rc.SourceURL, Source: verify.SourceDescription(rc.SourceURL), Key: rc.Key, Where: rc.Where, MaxDifferences: rc.MaxDifferences}
		if rc.MaxAge != nil {
			c.MaxAge = time.Duration(*rc.MaxAge)
		}
		if rc.MaxShrink != nil {
			p := float64(*rc.MaxShrink)
			c.MaxShrinkPercent = &p
		}
		if err := c.Validate(); err != nil {
			add(rc.line, "check %d: %v", j+1, err)
		}
		rc.foreignFields(add, j)
		if c.Name == "" {
			c.Name = c.DefaultName()
		}
		if line, dup := names[c.Name]; dup {
			add(rc.line, "check %d: duplicate check name %q (first at line %d); give one of them a name of its own (name: ...)", j+1, c.Name, line)
		}
		names[c.Name] = rc.line
		out = append(out, c)
	}
	return out
}
