// Package config reads drill.yaml into drills.Config: every problem with
// its FILE:LINE, environment variables expanded, unknown keys refused.
// Each backend's source: or target: section is decoded into the settings
// the backend registered (see drills.Register) and checked by them.
package config

import (
	"bytes"
	"drill/drills"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ConfigError lists everything wrong with a config file, each with its line.
type ConfigError struct {
	File     string
	Problems []Problem
}

// Problem is one thing wrong with a config file.
type Problem struct {
	Line int
	Msg  string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if p.Line > 0 {
			fmt.Fprintf(&b, "%s:%d: %s", e.File, p.Line, p.Msg)
		} else {
			fmt.Fprintf(&b, "%s: %s", e.File, p.Msg)
		}
	}
	return b.String()
}

// lineError is an error at a line of the file, from a decoder hook.
type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// Load reads and validates a config file. Every problem is reported
// as a *ConfigError naming the file and line.
func Load(path string) (*drills.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Problems: []Problem{{Msg: configReadHint(err)}}}
	}
	return Parse(path, data)
}

func configReadHint(err error) string {
	if errors.Is(err, os.ErrNotExist) {
		return "no such file (pass --config FILE, set DRILL_CONFIG, or create drill.yaml; see examples/drill.yaml)"
	}
	return err.Error()
}

const unsetVariable = "environment variable "

// OnlyUnsetVariables reports whether every problem err holds is an
// environment variable that is not set: the config is fine where it is
// written, only not complete in this environment.
func OnlyUnsetVariables(err error) bool {
	var ce *ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) == 0 {
		return false
	}
	for _, p := range ce.Problems {
		if !strings.HasPrefix(p.Msg, unsetVariable) || !strings.Contains(p.Msg, " is not set (referenced as ${") {
			return false
		}
	}
	return true
}

// StateURL reads only the state database's URL (database_url, its
// ${VAR}s expanded) from a config file, whatever the rest holds: commands
// that read the recorded history work with a config whose drills cannot
// be loaded here.
func StateURL(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", &ConfigError{File: path, Problems: []Problem{{Msg: configReadHint(err)}}}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return "", yamlError(path, err)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return "", &ConfigError{File: path, Problems: []Problem{{Msg: "want a mapping at the top level"}}}
	}
	top := root.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "database_url" {
			continue
		}
		v := top.Content[i+1]
		if err := expandEnv(v); err != nil {
			return "", yamlError(path, err)
		}
		if v.Kind != yaml.ScalarNode {
			return "", &ConfigError{File: path, Problems: []Problem{{Line: v.Line, Msg: "database_url must be a string"}}}
		}
		return v.Value, nil
	}
	return "", nil
}

// Parse parses and validates config data read from file.
func Parse(file string, data []byte) (*drills.Config, error) {
	fail := func(line int, msg string) error {
		return &ConfigError{File: file, Problems: []Problem{{Line: line, Msg: msg}}}
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if err.Error() == "EOF" {
			return nil, fail(0, "empty file: want a top-level drills: list")
		}
		return nil, yamlError(file, err)
	}
	if err := expandEnv(&root); err != nil {
		return nil, yamlError(file, err)
	}
	var linted []Problem
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		lint(root.Content[0], reflect.TypeOf(rawConfig{}), "the top level", &linted)
	}
	var raw rawConfig
	if err := root.Decode(&raw); err != nil {
		ce := yamlError(file, err)
		if len(linted) > 0 { // what linting found, and what decoding found besides
			problems := linted
			for _, p := range ce.Problems {
				if !slices.Contains(linted, p) {
					problems = append(problems, p)
				}
			}
			sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
			ce.Problems = problems
		}
		return nil, ce
	}
	cfg := &drills.Config{Path: file, DatabaseURL: raw.DatabaseURL, OverdueGrace: drills.DefaultOverdueGrace}
	if raw.OverdueGrace != nil {
		cfg.OverdueGrace = time.Duration(*raw.OverdueGrace)
	}
	problems := linted
	var nps []Problem
	cfg.Notify, nps = notifiers(raw.Notify, "")
	problems = append(problems, nps...)
	if len(raw.Drills) == 0 {
		problems = append(problems, Problem{Line: raw.line, Msg: "no drills: want a top-level drills: list with at least one drill"})
	}
	seen := map[string]int{}
	for i, rd := range raw.Drills {
		spec, ps := rd.spec(i)
		spec.Notify = append(append([]drills.Notify{}, cfg.Notify...), spec.Notify...)
		if len(spec.Controls) == 0 {
			spec.Controls = raw.Evidence.Controls
		}
		problems = append(problems, ps...)
		if spec.Name != "" {
			if line, dup := seen[spec.Name]; dup {
				problems = append(problems, Problem{rd.line, fmt.Sprintf("drill %q: duplicate name (first defined at line %d)", spec.Name, line)})
			}
			seen[spec.Name] = rd.line
		}
		cfg.Drills = append(cfg.Drills, spec)
	}
	if len(problems) > 0 {
		sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
		return nil, &ConfigError{File: file, Problems: problems}
	}
	return cfg, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns decoder errors ("yaml: line 3: …", lineError, TypeError)
// into a ConfigError with one problem per line.
func yamlError(file string, err error) *ConfigError {
	var lines []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		lines = te.Errors
	} else {
		lines = []string{err.Error()}
	}
	ce := &ConfigError{File: file}
	for _, l := range lines {
		if m := yamlLine.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			ce.Problems = append(ce.Problems, Problem{Line: n, Msg: friendlyYAML(m[2])})
		} else {
			ce.Problems = append(ce.Problems, Problem{Msg: strings.TrimPrefix(l, "yaml: ")})
		}
	}
	return ce
}

var cannotUnmarshal = regexp.MustCompile("cannot unmarshal !!(\\w+) `(.*)` into (.*)$")

func friendlyYAML(msg string) string {
	if m := cannotUnmarshal.FindStringSubmatch(msg); m != nil {
		want := m[3]
		switch {
		case strings.Contains(want, "int"):
			want = "a whole number"
		case strings.HasPrefix(want, "[]"):
			want = "a list"
		case strings.Contains(want, "raw"), strings.Contains(want, "map"):
			want = "a mapping (key: value)"
		case want == "string":
			want = "a single value"
		}
		return fmt.Sprintf("%q is not %s", m[2], want)
	}
	return msg
}

// envRef matches ${VAR}; $${VAR} is a literal ${VAR}.
var envRef = regexp.MustCompile(`\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${VAR} in every scalar value (not keys) with the
// environment variable, and fails on unset variables.
func expandEnv(n *yaml.Node) error {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if err := expandEnv(c); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			if err := expandEnv(n.Content[i]); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return nil
		}
		var missing string
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
			if m == "$${" {
				return "${"
			}
			name := m[2 : len(m)-1]
			v, ok := os.LookupEnv(name)
			if !ok && missing == "" {
				missing = name
			}
			return v
		})
		if missing != "" {
			return &lineError{n.Line, fmt.Sprintf(unsetVariable+"%s is not set (referenced as ${%s})", missing, missing)}
		}
		if n.Style != 0 { // quoted, block or explicitly tagged: stays a string
			return nil
		}
		n.Tag = "" // a plain scalar resolves anew: ${MIN} may stand for a number
	}
	return nil
}

// strictKeys fails on a mapping key that is not a yaml field of plain
// (or one of also).
func strictKeys(n *yaml.Node, plain any, what string, also ...string) error {
	if n.Kind != yaml.MappingNode {
		return &lineError{n.Line, fmt.Sprintf("%s must be a mapping (key: value)", what)}
	}
	known := append(also, yamlFields(reflect.TypeOf(plain))...)
	for i := 0; i < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(known, k.Value) {
			return &lineError{k.Line, unknownField(k.Value, what, known)}
		}
	}
	return nil
}

func yamlFields(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// unknownField says a key is not one of known in what.
func unknownField(key, what string, known []string) string {
	return fmt.Sprintf("unknown field %q in %s (known: %s)", key, what, strings.Join(known, ", "))
}

// decodeSection decodes a source: or target: mapping into settings (a
// pointer to the backend's struct), refusing keys it does not have.
func decodeSection(n *yaml.Node, settings any, what string) error {
	if err := strictKeys(n, reflect.ValueOf(settings).Elem().Interface(), what, "type"); err != nil {
		return err
	}
	rest := *n
	rest.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value != "type" {
			rest.Content = append(rest.Content, n.Content[i], n.Content[i+1])
		}
	}
	return rest.Decode(settings)
}

// sectionProblems turns a decoding error into problems with lines.
func sectionProblems(err error, fallback int) []Problem {
	var ce *ConfigError
	if errors.As(yamlError("", err), &ce) {
		for i := range ce.Problems {
			if ce.Problems[i].Line == 0 {
				ce.Problems[i].Line = fallback
			}
		}
		return ce.Problems
	}
	return []Problem{{Line: fallback, Msg: err.Error()}}
}

// Duration is a duration in the config file: Go syntax (90m, 26h) plus
// days (7d, 1d12h).
type Duration time.Duration

// UnmarshalYAML parses a duration, reporting its line on error.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return &lineError{n.Line, err.Error()}
	}
	*d = Duration(v)
	return nil
}

var daysPrefix = regexp.MustCompile(`^(\d+)d`)

// ParseDuration parses 30m, 26h, 7d or 1d12h. Zero and negative durations are errors.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var days time.Duration
	rest := s
	if m := daysPrefix.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		days = time.Duration(n) * 24 * time.Hour
		rest = s[len(m[0]):]
	}
	var d time.Duration
	if rest != "" {
		var err error
		if d, err = time.ParseDuration(rest); err != nil {
			return 0, fmt.Errorf("bad duration %q: want a number with a unit, such as 30m, 26h or 7d", s)
		}
	}
	if days+d <= 0 {
		return 0, fmt.Errorf("bad duration %q: must be greater than zero", s)
	}
	return days + d, nil
}

// Percent is a share written as 10% (or 10): a drift check's max_shrink.
type Percent float64

// UnmarshalYAML parses a percentage between 0% and 100%.
func (p *Percent) UnmarshalYAML(n *yaml.Node) error {
	v, err := parsePercent(n.Value)
	if err != nil {
		return &lineError{n.Line, err.Error()}
	}
	*p = Percent(v)
	return nil
}

// parsePercent parses 10% or 10 (between 0 and 100).
func parsePercent(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%")), 64)
	if err != nil || v < 0 || v > 100 {
		return 0, fmt.Errorf("%q is not a percentage between 0%% and 100%% (such as 10%%)", s)
	}
	return v, nil
}
