package experiments

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chaos-run/chaos/internal/strictyaml"
)

// The JSON Schema (draft 2020-12) of the format is generated from the Go
// types above by reflection, with their struct tags as annotations:
//
//	doc:"..."        the description editors show
//	required:"true"  the field must be there (and a list or map not empty)
//	enum:"a,b"       the allowed values of a string, or of a list's items
//	default:"1s"     the default editors offer
//	min:"1" max:"10" bounds of an integer
//	oneof:"kind"     exactly one field of the group "kind" is set;
//	                 "mode?" means at most one
//	nullable:"true"  null is allowed too (host:)
//	keys:"regexp"    the pattern of a map's keys
//
// The schema is for editors and pipelines: it checks the shape of a file.
// Load checks everything it checks and much more (references, expressions,
// blast radius), with better messages; a file the schema accepts may still
// be invalid, but a file Load accepts is always accepted by the schema.

// SchemaID is where the schema is published; files name it in their
// yaml-language-server modeline.
const SchemaID = "https://raw.githubusercontent.com/chaos-run/chaos/main/experiments/schema.json"

// Patterns of the scalar types, shared by the schema and its tests.
const (
	durationPattern     = `^[-+]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`
	longDurationPattern = `^(([0-9]+d)(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))*|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`
	percentPattern      = `^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*%$`
	identifierPattern   = `^[A-Za-z_][A-Za-z0-9_]*$`
)

// SchemaOptions tune JSONSchema.
type SchemaOptions struct {
	// PluginParams are the JSON Schemas of fault plugins' `with`
	// parameters, by plugin name (what each plugin's Describe returns).
	// A fault naming one of them has its `with` checked against it.
	PluginParams map[string]json.RawMessage
}

// JSONSchema returns the JSON Schema of the experiment file format,
// indented, with a final newline.
func JSONSchema(opts SchemaOptions) ([]byte, error) {
	g := &schemaGen{defs: map[string]*jsonObject{}, seen: map[reflect.Type]bool{}}
	root := g.structSchema(reflect.TypeOf(Experiment{}))
	if len(opts.PluginParams) > 0 {
		if err := g.addPlugins(opts.PluginParams); err != nil {
			return nil, err
		}
	}
	return g.document(root, SchemaID, "chaos experiment ("+APIVersion+")",
		"An experiment file of chaos: a hypothesis, the targets faults act on, probes, steady-state expressions, faults, budget, safety and report. `chaos validate` checks much more than this schema.")
}

// document is the schema file of one kind: the draft and id, title and
// description, root's keywords, and every definition g made, sorted,
// indented, with a final newline.
func (g *schemaGen) document(root *jsonObject, id, title, desc string) ([]byte, error) {
	doc := newObject().
		set("$schema", "https://json-schema.org/draft/2020-12/schema").
		set("$id", id).
		set("title", title).
		set("description", desc)
	for _, k := range root.keys {
		doc.set(k, root.vals[k])
	}
	defs := newObject()
	names := make([]string, 0, len(g.defs))
	for n := range g.defs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		defs.set(n, g.defs[n])
	}
	doc.set("$defs", defs)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode schema: %w", err)
	}
	return buf.Bytes(), nil
}

// jsonObject is a JSON object that keeps its keys in the order they were
// set, so that the schema reads like the format.
type jsonObject struct {
	keys []string
	vals map[string]any
}

func newObject() *jsonObject { return &jsonObject{vals: map[string]any{}} }

func (o *jsonObject) set(k string, v any) *jsonObject {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
	return o
}

// MarshalJSON implements json.Marshaler.
func (o *jsonObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		var vb bytes.Buffer
		enc := json.NewEncoder(&vb)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(o.vals[k]); err != nil {
			return nil, err
		}
		b.Write(bytes.TrimRight(vb.Bytes(), "\n"))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

type schemaGen struct {
	defs map[string]*jsonObject
	seen map[reflect.Type]bool
}

var (
	durationType     = reflect.TypeOf(time.Duration(0))
	longDurationType = reflect.TypeOf(LongDuration(0))
	percentType      = reflect.TypeOf(Percent(0))
	byteSizeType     = reflect.TypeOf(ByteSize(0))
	expressionType   = reflect.TypeOf(Expression{})
	secretType       = reflect.TypeOf(Secret{})
)

// typeSchema is the schema of a value of type t.
func (g *schemaGen) typeSchema(t reflect.Type) *jsonObject {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case durationType:
		return newObject().set("type", "string").set("pattern", durationPattern)
	case longDurationType:
		return newObject().set("type", "string").set("pattern", longDurationPattern)
	case percentType:
		return newObject().set("anyOf", []any{
			newObject().set("type", "number"),
			newObject().set("type", "string").set("pattern", percentPattern),
		})
	case expressionType:
		return newObject().set("type", "string").set("minLength", 1)
	case secretType:
		return newObject().set("type", "string")
	case byteSizeType:
		return newObject().set("anyOf", []any{
			newObject().set("type", "integer"),
			newObject().set("type", "string").set("pattern", byteSizePattern),
		})
	}
	switch t.Kind() {
	case reflect.String:
		return newObject().set("type", "string")
	case reflect.Bool:
		return newObject().set("type", "boolean")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return newObject().set("type", "integer")
	case reflect.Float32, reflect.Float64:
		return newObject().set("type", "number")
	case reflect.Slice, reflect.Array:
		return newObject().set("type", "array").set("items", g.typeSchema(t.Elem()))
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return newObject().set("type", "object")
		}
		return newObject().set("type", "object").set("additionalProperties", g.typeSchema(t.Elem()))
	case reflect.Struct:
		name := t.Name()
		if !g.seen[t] {
			g.seen[t] = true
			g.defs[name] = g.structSchema(t)
		}
		return newObject().set("$ref", "#/$defs/"+name)
	}
	return newObject()
}

// structSchema is the schema of a struct: its yaml fields, in order.
func (g *schemaGen) structSchema(t reflect.Type) *jsonObject {
	props := newObject()
	var required []string
	groups := map[string][]string{}
	var groupOrder []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strictyaml.LowerCamel(f.Name)
		}
		props.set(name, g.fieldSchema(f))
		if f.Tag.Get("required") == "true" {
			required = append(required, name)
		}
		if grp := f.Tag.Get("oneof"); grp != "" {
			if _, ok := groups[grp]; !ok {
				groupOrder = append(groupOrder, grp)
			}
			groups[grp] = append(groups[grp], name)
		}
	}
	s := newObject().set("type", "object")
	if len(props.keys) == 0 {
		s.set("additionalProperties", false)
		return s
	}
	s.set("properties", props).set("additionalProperties", false)
	if len(required) > 0 {
		s.set("required", required)
	}
	var all []any
	for _, grp := range groupOrder {
		names := groups[grp]
		if strings.HasSuffix(grp, "?") {
			// At most one: no two of them together.
			var pairs []any
			for i := range names {
				for j := i + 1; j < len(names); j++ {
					pairs = append(pairs, newObject().set("required", []string{names[i], names[j]}))
				}
			}
			all = append(all, newObject().set("not", newObject().set("anyOf", pairs)))
			continue
		}
		var one []any
		for _, n := range names {
			one = append(one, newObject().set("required", []string{n}))
		}
		all = append(all, newObject().set("oneOf", one))
	}
	switch len(all) {
	case 0:
	case 1:
		for _, k := range all[0].(*jsonObject).keys {
			s.set(k, all[0].(*jsonObject).vals[k])
		}
	default:
		s.set("allOf", all)
	}
	return s
}

// fieldSchema is the schema of one field, with its annotations.
func (g *schemaGen) fieldSchema(f reflect.StructField) *jsonObject {
	s := g.typeSchema(f.Type)
	tag := f.Tag
	if v := tag.Get("enum"); v != "" {
		target := s
		if items, ok := s.vals["items"].(*jsonObject); ok {
			target = items
			s.set("uniqueItems", true)
		}
		target.set("enum", strings.Split(v, ","))
	}
	if v := tag.Get("min"); v != "" {
		n, _ := strconv.Atoi(v)
		s.set("minimum", n)
	}
	if v := tag.Get("max"); v != "" {
		n, _ := strconv.Atoi(v)
		s.set("maximum", n)
	}
	if v := tag.Get("keys"); v != "" {
		s.set("propertyNames", newObject().set("pattern", v))
	}
	if tag.Get("required") == "true" {
		switch f.Type.Kind() {
		case reflect.Slice:
			s.set("minItems", 1)
		case reflect.Map:
			s.set("minProperties", 1)
		case reflect.String:
			s.set("minLength", 1)
		case reflect.Struct:
			if f.Type == secretType {
				s.set("minLength", 1)
			}
		}
	}
	if v := tag.Get("default"); v != "" {
		s.set("default", v)
	}
	if tag.Get("nullable") == "true" {
		s = newObject().set("anyOf", []any{s, newObject().set("type", "null")})
	}
	if v := tag.Get("doc"); v != "" {
		s.set("description", v)
	}
	return s
}

// addPlugins makes a fault's `with` follow its plugin's parameter schema.
func (g *schemaGen) addPlugins(params map[string]json.RawMessage) error {
	fault := g.defs["Fault"]
	if fault == nil {
		return fmt.Errorf("schema has no Fault")
	}
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	sort.Strings(names)
	var all []any
	for _, n := range names {
		var ps map[string]any
		if err := json.Unmarshal(params[n], &ps); err != nil {
			return fmt.Errorf("parameter schema of plugin %s: %w", n, err)
		}
		// An embedded schema has the document's dialect; its own $schema
		// and $id would make it a separate resource.
		delete(ps, "$schema")
		delete(ps, "$id")
		all = append(all, newObject().
			set("if", newObject().set("properties", newObject().set("plugin", newObject().set("const", n))).set("required", []string{"plugin"})).
			set("then", newObject().set("properties", newObject().set("with", sortedValue(ps)))))
	}
	fault.set("allOf", all)
	if props, ok := fault.vals["properties"].(*jsonObject); ok {
		if plugin, ok := props.vals["plugin"].(*jsonObject); ok {
			plugin.set("examples", names)
		}
	}
	return nil
}

// sortedValue turns decoded JSON into ordered objects with sorted keys, so
// that the output is stable.
func sortedValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		o := newObject()
		for _, k := range keys {
			o.set(k, sortedValue(x[k]))
		}
		return o
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = sortedValue(e)
		}
		return out
	}
	return v
}
