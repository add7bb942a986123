package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// DecodeParams checks a fault's `with` parameters against the JSON Schema
// the plugin declares (Description.ParamsSchema) and, when nothing is wrong,
// decodes them into v with encoding/json. The schema is the one source of
// truth: a plugin checks by hand only what a schema cannot say (one
// parameter compared with another).
//
// Every problem names its parameter path ("with.delay"; "with" for the
// whole), one problem per parameter. Beyond JSON Schema, a property with
// "format": "duration" is a Go duration string ("200ms"): it is parsed,
// checked against the annotations "x-minimum", "x-exclusiveMinimum" and
// "x-maximum" (durations as strings, which editors show), and decodes into
// a time.Duration field.
func DecodeParams(raw, schema json.RawMessage, v any) []ParamProblem {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("{}")
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return []ParamProblem{{Param: "with", Message: "parameters are not valid JSON: " + err.Error()}}
	}
	props, compiled, err := compileParams(schema)
	if err != nil {
		return []ParamProblem{{Param: "with", Message: "the plugin's parameter schema is broken (a bug of the plugin): " + err.Error()}}
	}
	probs := map[string]string{}
	add := func(param, msg string) {
		if _, ok := probs[param]; !ok {
			probs[param] = msg
		}
	}
	if err := compiled.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return []ParamProblem{{Param: "with", Message: err.Error()}}
		}
		for _, leaf := range leaves(ve) {
			schemaProblem(leaf, props, valueAt(inst, leaf.InstanceLocation), add)
		}
	}
	obj, _ := inst.(map[string]any)
	for _, name := range sortedKeys(props) {
		p := props[name]
		val, ok := obj[name]
		if p.Format != "duration" || !ok {
			continue
		}
		d, msg := p.duration(name, val)
		if msg != "" {
			add("with."+name, msg)
			continue
		}
		obj[name] = int64(d)
	}
	if len(probs) > 0 {
		out := make([]ParamProblem, 0, len(probs))
		for _, param := range sortedKeys(probs) {
			out = append(out, ParamProblem{Param: param, Message: probs[param]})
		}
		return out
	}
	b, err := json.Marshal(inst)
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		return []ParamProblem{{Param: "with", Message: "decode parameters: " + err.Error()}}
	}
	return nil
}

// paramSchema is what DecodeParams reads itself of one top-level property:
// what its messages name, and the duration annotations.
type paramSchema struct {
	Format            string       `json:"format"`
	Minimum           *json.Number `json:"minimum"`
	Maximum           *json.Number `json:"maximum"`
	Enum              []any        `json:"enum"`
	XMinimum          string       `json:"x-minimum"`
	XExclusiveMinimum string       `json:"x-exclusiveMinimum"`
	XMaximum          string       `json:"x-maximum"`
}

func compileParams(schema json.RawMessage) (map[string]paramSchema, *jsonschema.Schema, error) {
	var top struct {
		Properties map[string]paramSchema `json:"properties"`
	}
	if err := json.Unmarshal(schema, &top); err != nil {
		return nil, nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, nil, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("params.json", doc); err != nil {
		return nil, nil, err
	}
	compiled, err := c.Compile("params.json")
	if err != nil {
		return nil, nil, err
	}
	for name, p := range top.Properties {
		for _, b := range []string{p.XMinimum, p.XExclusiveMinimum, p.XMaximum} {
			if _, err := time.ParseDuration(b); b != "" && err != nil {
				return nil, nil, fmt.Errorf("property %s: bound %q is not a duration", name, b)
			}
		}
	}
	return top.Properties, compiled, nil
}

// duration parses and bounds a duration parameter; the message is empty
// when it is fine.
func (p paramSchema) duration(name string, v any) (time.Duration, string) {
	s, ok := v.(string)
	d, err := time.ParseDuration(s)
	if !ok || err != nil {
		return 0, fmt.Sprintf("%s is not a duration (use a number with a unit, e.g. 200ms)", show(v))
	}
	bound := func(b string) time.Duration { x, _ := time.ParseDuration(b); return x }
	switch {
	case p.XExclusiveMinimum != "" && d <= bound(p.XExclusiveMinimum):
		return 0, fmt.Sprintf("%s %s must be more than %s", name, s, p.XExclusiveMinimum)
	case p.XMinimum != "" && d < bound(p.XMinimum):
		return 0, fmt.Sprintf("%s %s is less than the least the plugin allows, %s", name, s, p.XMinimum)
	case p.XMaximum != "" && d > bound(p.XMaximum):
		return 0, fmt.Sprintf("%s %s is more than the most the plugin allows, %s", name, s, p.XMaximum)
	}
	return d, ""
}

// leaves are the errors at the bottom of a validation error's tree: the
// particular things wrong.
func leaves(ve *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(ve.Causes) == 0 {
		return []*jsonschema.ValidationError{ve}
	}
	var out []*jsonschema.ValidationError
	for _, c := range ve.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

// schemaProblem turns one schema error into problems at their parameters.
func schemaProblem(leaf *jsonschema.ValidationError, props map[string]paramSchema, val any, add func(param, msg string)) {
	param := strings.Join(append([]string{"with"}, leaf.InstanceLocation...), ".")
	name := "with"
	if n := len(leaf.InstanceLocation); n > 0 {
		name = leaf.InstanceLocation[n-1]
	}
	var p paramSchema
	if len(leaf.InstanceLocation) == 1 {
		p = props[name]
	}
	if p.Format == "duration" {
		// The duration check owns every message about a duration: it
		// says what a duration looks like, not which pattern failed.
		switch leaf.ErrorKind.(type) {
		case *kind.Type, *kind.Pattern, *kind.Format:
			return
		}
	}
	switch k := leaf.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		for _, extra := range k.Properties {
			add(param+"."+extra, fmt.Sprintf("unknown parameter %q (allowed: %s)", extra, strings.Join(sortedKeys(props), ", ")))
		}
	case *kind.Required:
		for _, m := range k.Missing {
			add(param+"."+m, m+" is required")
		}
	case *kind.Type:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = typeWords(w)
		}
		add(param, fmt.Sprintf("%s must be %s, got %s", name, strings.Join(want, " or "), show(val)))
	case *kind.Minimum, *kind.Maximum, *kind.ExclusiveMinimum, *kind.ExclusiveMaximum:
		got := fmt.Sprint(val)
		if p.Minimum != nil && p.Maximum != nil {
			add(param, fmt.Sprintf("%s %s is out of range: from %s to %s", name, got, p.Minimum, p.Maximum))
			return
		}
		add(param, fmt.Sprintf("%s %s is out of range: %s", name, got, leaf.ErrorKind.LocalizedString(printer())))
	case *kind.Enum:
		allowed := make([]string, len(k.Want))
		for i, w := range k.Want {
			allowed[i] = fmt.Sprint(w)
		}
		add(param, fmt.Sprintf("unknown %s %v (allowed: %s)", name, k.Got, strings.Join(allowed, ", ")))
	default:
		add(param, name+": "+leaf.ErrorKind.LocalizedString(printer()))
	}
}

// valueAt is the value at an instance location.
func valueAt(inst any, loc []string) any {
	for _, k := range loc {
		m, ok := inst.(map[string]any)
		if !ok {
			return nil
		}
		inst = m[k]
	}
	return inst
}

func printer() *message.Printer { return message.NewPrinter(language.English) }

func typeWords(t string) string {
	switch t {
	case "integer":
		return "a whole number"
	case "number":
		return "a number"
	case "string":
		return "a string"
	case "boolean":
		return "true or false"
	case "object":
		return "a mapping"
	case "array":
		return "a list"
	}
	return t
}

// show writes a parameter's value for a message: strings quoted.
func show(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
