package drills

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"sync"
)

// A backend is a kind of source or target (pgdump, rds-snapshot, local,
// rds...). Each lives in a package of its own that registers itself here
// (in an init func) with the settings its section of drill.yaml decodes
// into and a constructor. Nothing else knows a backend's fields: the config
// package decodes a section into the registered settings, the Runner gets
// Sources and Targets from the constructors.

// Backend describes one registered backend.
type Backend struct {
	// Kind is "source" or "target"; Type its name in drill.yaml.
	Kind, Type string
	// Settings returns a new settings value: a pointer to a struct whose
	// yaml tags are the section's keys (besides type) and whose json tags
	// are how a run's record keeps them. It may implement Validator and
	// Describer.
	Settings func() any
	// NewSource builds a Source (sources only).
	NewSource func(ctx context.Context, spec *Spec) (Source, error)
	// NewTarget builds a Target (targets only).
	NewTarget func(ctx context.Context, spec *Spec) (Target, error)
}

// Backend kinds.
const (
	KindSource = "source"
	KindTarget = "target"
)

// DefaultTargetType is the target of a drill without a target section.
const DefaultTargetType = "local"

// SettingsProblem is one thing wrong with a section: Key names the field
// (for its line in the file), "" the section itself; DrillKey, when set,
// names a key of the drill instead (a rule across sections).
type SettingsProblem struct {
	Key, DrillKey, Msg string
}

// Validator is implemented by settings that check themselves after
// decoding. spec is the whole drill, for rules across sections (an RDS
// source restores into an RDS target).
type Validator interface {
	Validate(spec *Spec) []SettingsProblem
}

// ToolChecker is implemented by settings whose backend runs a program
// that may not be installed: Missing says how to install it, or is "".
type ToolChecker interface {
	Missing() string
}

// Warner is implemented by settings that can tell, at validation, of
// something that is not wrong in the file but will fail a run as things
// stand (a location not mounted yet): `drill validate` prints each.
type Warner interface {
	Warnings() []string
}

// Describer is implemented by source settings that can say in a few words
// where the backups are (`drill validate`).
type Describer interface {
	Describe() string
}

var (
	registryMu sync.RWMutex
	registry   = map[string]map[string]Backend{}
)

// Register adds a backend; registering a type twice panics.
func Register(b Backend) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if registry[b.Kind] == nil {
		registry[b.Kind] = map[string]Backend{}
	}
	if _, dup := registry[b.Kind][b.Type]; dup {
		panic(fmt.Sprintf("drills: %s backend %q registered twice", b.Kind, b.Type))
	}
	registry[b.Kind][b.Type] = b
}

// Lookup returns the registered backend of a kind and type.
func Lookup(kind, typ string) (Backend, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	b, ok := registry[kind][typ]
	return b, ok
}

// Types lists the registered types of a kind, sorted.
func Types(kind string) []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	var out []string
	for t := range registry[kind] {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// BackendSpec is a drill's source or target: its type and its backend's
// settings (a value of the type the backend registered; a generic map when
// read back for a backend this program does not have).
type BackendSpec struct {
	Type     string
	Settings any
}

// SourceSpec says where a drill's backups are.
type SourceSpec = BackendSpec

// TargetSpec says where a drill restores to.
type TargetSpec = BackendSpec

// MarshalJSON writes {"type": ..., settings...}: the settings' fields in
// the order their struct declares them, the canonical form of a record.
func (b BackendSpec) MarshalJSON() ([]byte, error) {
	typ, err := json.Marshal(b.Type)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.WriteString(`{"type":`)
	buf.Write(typ)
	if b.Settings != nil {
		rest, err := json.Marshal(b.Settings)
		if err != nil {
			return nil, err
		}
		rest = bytes.TrimSpace(rest)
		if len(rest) < 2 || rest[0] != '{' {
			return nil, fmt.Errorf("%s settings are not a JSON object", b.Type)
		}
		if inner := bytes.TrimSpace(rest[1 : len(rest)-1]); len(inner) > 0 {
			buf.WriteByte(',')
			buf.Write(inner)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// UnmarshalJSON reads what MarshalJSON wrote, into the registered settings
// of the type when there are some (a source's, else a target's: Policy
// reads each with its own kind).
func (b *BackendSpec) UnmarshalJSON(data []byte) error {
	return b.unmarshal(data, KindSource, KindTarget)
}

func (b *BackendSpec) unmarshal(data []byte, kinds ...string) error {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return err
	}
	b.Type = head.Type
	for _, kind := range kinds {
		if be, ok := Lookup(kind, head.Type); ok && be.Settings != nil {
			s := be.Settings()
			if err := json.Unmarshal(data, s); err != nil {
				return fmt.Errorf("%s settings: %w", head.Type, err)
			}
			b.Settings = reflect.ValueOf(s).Elem().Interface()
			return nil
		}
	}
	var rest map[string]any
	if err := json.Unmarshal(data, &rest); err != nil {
		return err
	}
	delete(rest, "type")
	if len(rest) > 0 {
		b.Settings = rest
	}
	return nil
}

// Decode stores the settings into out, a pointer to the backend's
// settings type. Settings of another representation go through JSON.
func (b BackendSpec) Decode(out any) error {
	if b.Settings == nil {
		return nil
	}
	v := reflect.ValueOf(out)
	if v.Kind() == reflect.Pointer && reflect.TypeOf(b.Settings) == v.Type().Elem() {
		v.Elem().Set(reflect.ValueOf(b.Settings))
		return nil
	}
	data, err := json.Marshal(b.Settings)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, out)
}

// Describe says where a source's backups are, in a few words (its
// settings' Describe), or "".
func (b BackendSpec) Describe() string {
	if d, ok := b.Settings.(Describer); ok {
		return d.Describe()
	}
	return ""
}

// Key identifies a backend spec (for deduplication).
func (b BackendSpec) Key() string {
	data, _ := json.Marshal(b)
	return string(data)
}

// UnmarshalJSON reads a policy, each backend section as its own kind.
func (p *Policy) UnmarshalJSON(data []byte) error {
	type plain Policy
	var raw struct {
		plain
		Source json.RawMessage `json:"source"`
		Target json.RawMessage `json:"target"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	*p = Policy(raw.plain)
	if len(raw.Source) > 0 {
		if err := p.Source.unmarshal(raw.Source, KindSource); err != nil {
			return err
		}
	}
	if len(raw.Target) > 0 {
		return p.Target.unmarshal(raw.Target, KindTarget)
	}
	return nil
}
