package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"drill/drills"

	"go.yaml.in/yaml/v3"
)

// lint walks the file along the shape of its raw types before decoding,
// collecting every unknown key, every value that is not a whole number
// where one is wanted and every bad duration, and takes each out of the
// way, so that one run reports them all together with everything decoding
// and validation find.
func lint(n *yaml.Node, t reflect.Type, what string, ps *[]Problem) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeOf(Duration(0)) || t == reflect.TypeOf(time.Duration(0)):
		if n.Kind == yaml.ScalarNode {
			if _, err := durationOf(t, n.Value); err != nil {
				*ps = append(*ps, Problem{n.Line, err.Error()})
				n.Value, n.Tag, n.Style = "1h", "!!str", 0
			}
		}
	case t == reflect.TypeOf(Percent(0)):
		if n.Kind == yaml.ScalarNode {
			if _, err := parsePercent(n.Value); err != nil {
				*ps = append(*ps, Problem{n.Line, err.Error()})
				n.Value, n.Tag, n.Style = "0", "!!str", 0
			}
		}
	case t == reflect.TypeOf(rawSection{}):
		lintSection(n, what, ps)
	case t.Kind() == reflect.Struct:
		lintMapping(n, t, what, ps)
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for _, item := range n.Content {
			lint(item, t.Elem(), itemName(t.Elem()), ps)
		}
	case isInt(t.Kind()) && n.Kind == yaml.ScalarNode && n.ShortTag() != "!!int":
		*ps = append(*ps, Problem{n.Line, fmt.Sprintf("%q is not a whole number (%s)", n.Value, what)})
		n.Value, n.Tag, n.Style = "0", "!!int", 0
	}
}

func durationOf(t reflect.Type, s string) (time.Duration, error) {
	if t == reflect.TypeOf(Duration(0)) {
		return ParseDuration(s)
	}
	return time.ParseDuration(s)
}

func isInt(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// itemName is how a problem names an entry of a list of t.
func itemName(t reflect.Type) string {
	switch t {
	case reflect.TypeOf(rawDrill{}):
		return "a drill"
	case reflect.TypeOf(rawCheck{}):
		return "a check"
	case reflect.TypeOf(rawNotify{}):
		return "a notify entry"
	}
	return "an entry"
}

// lintMapping checks the keys of a mapping against the yaml fields of t
// (and also), dropping unknown ones.
func lintMapping(n *yaml.Node, t reflect.Type, what string, ps *[]Problem, also ...string) {
	if n.Kind != yaml.MappingNode {
		return // decoding says what is wrong
	}
	known := append(also, yamlFields(t)...)
	var kept []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !slices.Contains(known, k.Value) {
			*ps = append(*ps, Problem{k.Line, unknownField(k.Value, what, known)})
			continue
		}
		kept = append(kept, k, v)
		if f, ok := fieldByTag(t, k.Value); ok {
			lint(v, f.Type, fieldName(f.Type, k.Value), ps)
		}
	}
	n.Content = kept
}

// fieldName names the value of key for problems inside it.
func fieldName(t reflect.Type, key string) string {
	if t == reflect.TypeOf(rawObjectives{}) || t == reflect.TypeOf(&rawObjectives{}) {
		return "objectives"
	}
	return key
}

// lintSection checks a source: or target: section against the settings of
// its backend, when its type is known (an unknown type is reported later).
func lintSection(n *yaml.Node, what string, ps *[]Problem) {
	if n.Kind != yaml.MappingNode {
		return
	}
	typ := ""
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "type" {
			typ = n.Content[i+1].Value
		}
	}
	kind := drills.KindSource
	if what == "target" {
		kind = drills.KindTarget
		if typ == "" {
			typ = drills.DefaultTargetType
		}
	}
	be, ok := drills.Lookup(kind, typ)
	if !ok {
		return
	}
	lintMapping(n, reflect.TypeOf(be.Settings()).Elem(), what, ps, "type")
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
