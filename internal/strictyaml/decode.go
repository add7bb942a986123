// Package strictyaml is the strict half of parsing: it walks a yaml.Node
// tree into Go structs and, unlike yaml.Node.Decode, it never stops at the
// first mistake. Every problem is recorded with the line and column the user
// has to look at and a hint where one helps (did you mean, allowed keys), so
// that one run of `chaos validate` lists everything wrong with a file.
//
// It knows nothing about experiments: the types decide what they accept
// (NodeDecoder), and a caller's Options.Expand hook rewrites string values
// (the format's ${env:NAME}). It must never read files, the environment or
// anything but the node tree it is given.
package strictyaml

import (
	"encoding"
	"encoding/base64"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Pos is a 1-based line and column in a file.
type Pos struct{ Line, Col int }

// String returns the position as "line:col", e.g. "12:5".
func (p Pos) String() string { return strconv.Itoa(p.Line) + ":" + strconv.Itoa(p.Col) }

// Problem is one thing wrong with a file.
type Problem struct {
	Pos Pos
	// Path is the dotted path of the field, e.g.
	// "spec.probes.checkout.http.timeout"; list items are written as
	// "spec.faults[1].plugin". It is empty for the top level.
	Path string
	// Message is lowercase with no trailing period, e.g.
	// `unknown field "timout" in http`.
	Message string
	// Hint is optional: `did you mean "timeout"?` or `allowed: a, b, c`.
	Hint string
}

// NodeDecoder lets a type decode itself (expressions, for example). It is
// implemented on the pointer receiver and is handed every node the type is
// decoded from, null included, with aliases already resolved, together with
// the dotted path of the value. It appends what is wrong to probs.
type NodeDecoder interface {
	DecodeNode(node *yaml.Node, path string, probs *[]Problem)
}

// Decode decodes node into out, which must be a non-nil pointer (usually to
// a struct), and appends every problem it finds to probs in document order.
// node may be a DocumentNode (its first content is used) or the top-level
// mapping itself. An empty document leaves out untouched and is not a
// problem here; whatever is required is for validation to say.
//
// The rules, in short:
//   - struct fields map by their `yaml:"name"` tag, or by the lowerCamel form
//     of the Go name; `yaml:"-"` is skipped and `,inline` on a struct field
//     flattens its fields into the parent;
//   - a field `Pos Pos` tagged `yaml:"-"` receives the position of the value
//     the struct was decoded from (the alias, when the value is an alias),
//     and `KeyPos Pos` tagged `yaml:"-"` the position of its key, if any;
//   - unknown and duplicate keys, wrong kinds, bad numbers, booleans and
//     durations are problems; the rest of the file is still decoded;
//   - a null value leaves the field at its zero value, except that a struct
//     (or a pointer to one) is then treated as an empty mapping, so that
//     `host:` means the same as `host: {}`;
//   - `any` and `map[string]any` receive plain values: string, int, float64,
//     bool, []any, map[string]any and nil;
//   - aliases and merge keys (`<<`) are followed; an alias that contains
//     itself, or aliases that expand to far more values than the file holds,
//     are problems rather than a hang.
//
// Decode never panics on input produced by yaml.Unmarshal.
func Decode(node *yaml.Node, out any, probs *[]Problem) {
	decode(node, out, probs, Options{})
}

// FieldPos is where a field stands in a file: its key (zero for list items
// and the top level) and its value.
type FieldPos struct{ Key, Value Pos }

// Options are the optional hooks of one decoding.
type Options struct {
	// Index, when not nil, receives the position of every value decoded,
	// by dotted path, so that validation can point at the exact field. The
	// first value decoded at a path wins (a duplicate key comes later).
	Index map[string]FieldPos
	// Expand, when not nil, rewrites the text of every string value as it
	// is decoded (struct fields, map values, plain `any` values; never keys
	// nor values that decode themselves). It appends what is wrong to probs.
	// A result that holds a secret is kept as it is: in a field of the
	// result's own type, or as a plain `any` value; a plain string field
	// refuses it and keeps what the file wrote.
	Expand func(text string, n *yaml.Node, path string, probs *[]Problem) Text
}

// Text is what Options.Expand makes of a string value. A type that
// implements it (by value) and encoding.TextUnmarshaler (by pointer) is a
// text field: it receives Expand's result when that has its type, and
// UnmarshalText of the plain text otherwise.
type Text interface {
	// Reveal is the expanded value.
	Reveal() string
	// Written is the value as the file wrote it.
	Written() string
	// HoldsSecret reports whether only a text field or an `any` may keep
	// the value.
	HoldsSecret() bool
}

// DecodeWith is Decode with hooks.
func DecodeWith(node *yaml.Node, out any, probs *[]Problem, opts Options) {
	decode(node, out, probs, opts)
}

func decode(node *yaml.Node, out any, probs *[]Problem, opts Options) {
	var local []Problem
	d := &yamlDecoder{
		probs:  &local,
		active: map[*yaml.Node]bool{},
		infos:  map[reflect.Type]*yamlStructInfo{},
		opts:   opts,
	}
	rv := reflect.ValueOf(out)
	switch {
	case !rv.IsValid() || rv.Kind() != reflect.Pointer || rv.IsNil():
		local = append(local, Problem{Message: fmt.Sprintf("cannot decode into %T: need a non-nil pointer", out)})
	case node != nil:
		d.limit = yamlStepLimit(node)
		d.value(node, rv.Elem(), yamlWhere{})
	}

	// Aliases and merges can make problems come out of document order, and
	// the same anchored value can be reported once per use; the user wants
	// each mistake once, in the order of the file.
	sort.SliceStable(local, func(i, j int) bool {
		a, b := local[i].Pos, local[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	type seenKey struct {
		pos           Pos
		message, hint string
	}
	seen := make(map[seenKey]bool, len(local))
	if probs == nil {
		return
	}
	for _, p := range local {
		k := seenKey{p.Pos, p.Message, p.Hint}
		if seen[k] {
			continue
		}
		seen[k] = true
		*probs = append(*probs, p)
	}
}

// yamlDecoder holds the state of one Decode call. Nothing in it outlives
// that call.
type yamlDecoder struct {
	probs *[]Problem
	// active holds the anchored nodes being decoded right now; meeting one
	// again through an alias means the alias contains itself.
	active map[*yaml.Node]bool
	infos  map[reflect.Type]*yamlStructInfo
	// steps counts values decoded; limit bounds it so that a few lines of
	// nested aliases ("billion laughs") cannot expand into gigabytes.
	steps, limit int
	stopped      bool
	opts         Options
}

// yamlWhere says where a value sits: the chain of keys and list indexes
// that leads to it, and the position of its key (zero for list items and the
// top level). The chain is shared with the parent so that deep nesting costs
// nothing until a path is printed.
type yamlWhere struct {
	parent *yamlWhere
	name   string // the field or key, for a value in a mapping
	index  int    // the index, for a list item
	isItem bool
	key    Pos
}

func (w yamlWhere) field(name string, key Pos) yamlWhere {
	return yamlWhere{parent: &w, name: name, key: key}
}

func (w yamlWhere) item(i int) yamlWhere {
	return yamlWhere{parent: &w, index: i, isItem: true}
}

func (w yamlWhere) isRoot() bool { return w.parent == nil }

// path renders the dotted path, e.g. "spec.faults[1].plugin".
func (w yamlWhere) path() string {
	var segs []*yamlWhere
	for p := &w; p.parent != nil; p = p.parent {
		segs = append(segs, p)
	}
	var b strings.Builder
	for i := len(segs) - 1; i >= 0; i-- {
		switch s := segs[i]; {
		case s.isItem:
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.name)
		}
	}
	return b.String()
}

// context names the mapping a key is in, for "unknown field" messages: the
// last segment of its path, e.g. "http" or "faults[1]".
func (w yamlWhere) context() string {
	suffix := ""
	p := &w
	for ; p.parent != nil && p.isItem; p = p.parent {
		suffix = "[" + strconv.Itoa(p.index) + "]" + suffix
	}
	if p.parent == nil {
		if suffix == "" {
			return "the top level"
		}
		return "the top level" + suffix
	}
	return p.name + suffix
}

func PosOf(n *yaml.Node) Pos {
	if n == nil {
		return Pos{}
	}
	return Pos{Line: n.Line, Col: n.Column}
}

func (d *yamlDecoder) add(at Pos, w yamlWhere, message, hint string) {
	*d.probs = append(*d.probs, Problem{Pos: at, Path: w.path(), Message: message, Hint: hint})
}

// yamlStepLimit allows every node of the file to be decoded many times over
// through aliases, but not without bound.
func yamlStepLimit(root *yaml.Node) int {
	seen := map[*yaml.Node]bool{}
	stack := []*yaml.Node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n == nil || seen[n] {
			continue
		}
		seen[n] = true
		stack = append(stack, n.Content...)
	}
	return 10_000 + 100*len(seen)
}

// yamlNull stands in for a missing node (an empty document, a nil entry).
func yamlNull() *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"} }

// enter resolves documents and aliases to the node that holds the value and
// marks anchored nodes as being decoded. When it returns true, the caller
// must call leave with the node it got.
func (d *yamlDecoder) enter(n *yaml.Node, w yamlWhere) (*yaml.Node, bool) {
	if !d.spend(1, n, w) {
		return nil, false
	}
	alias := ""
	for hops := 0; ; hops++ {
		if n == nil {
			return yamlNull(), true
		}
		if hops > 64 {
			d.add(PosOf(n), w, "too many nested aliases", "")
			return nil, false
		}
		switch n.Kind {
		case yaml.DocumentNode:
			if len(n.Content) == 0 {
				return yamlNull(), true
			}
			n = n.Content[0]
			continue
		case yaml.AliasNode:
			if n.Alias == nil {
				d.add(PosOf(n), w, fmt.Sprintf("unknown alias *%s", n.Value), "")
				return nil, false
			}
			alias = n.Value
			n = n.Alias
			continue
		}
		break
	}
	if n.Anchor != "" {
		if d.active[n] {
			name := alias
			if name == "" {
				name = n.Anchor
			}
			d.add(PosOf(n), w, fmt.Sprintf("alias *%s refers to a value that contains it", name), "")
			return nil, false
		}
		d.active[n] = true
	}
	return n, true
}

// spend counts work against the limit and reports, once, when it runs out.
func (d *yamlDecoder) spend(steps int, n *yaml.Node, w yamlWhere) bool {
	if d.stopped {
		return false
	}
	d.steps += steps
	if d.steps > d.limit {
		d.stopped = true
		d.add(PosOf(n), w, "the file is too complex: its aliases expand to too many values", "")
		return false
	}
	return true
}

// record notes where the value at w stands, unless a value was recorded
// there before.
func (d *yamlDecoder) record(w yamlWhere, at Pos) {
	p := w.path()
	if _, ok := d.opts.Index[p]; !ok {
		d.opts.Index[p] = FieldPos{Key: w.key, Value: at}
	}
}

// expandTagged is expand for a scalar tagged as a string, and nil for any
// other: `port: 8080` is text, but never one to expand.
func (d *yamlDecoder) expandTagged(s string, n *yaml.Node, w yamlWhere) Text {
	if n.ShortTag() != "!!str" {
		return nil
	}
	return d.expand(s, n, w)
}

// expand applies the string hook, if any; nil means the text is kept.
func (d *yamlDecoder) expand(s string, n *yaml.Node, w yamlWhere) Text {
	if d.opts.Expand == nil {
		return nil
	}
	return d.opts.Expand(s, n, w.path(), d.probs)
}

func (d *yamlDecoder) leave(n *yaml.Node) {
	if n.Anchor != "" {
		delete(d.active, n)
	}
}

func IsNull(n *yaml.Node) bool {
	return n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// tagOK rejects tags that do not fit the node, such as `!foo` or a `!!map`
// on a scalar: they are almost always mistakes, and ignoring them would
// decode something other than what the file says.
func (d *yamlDecoder) tagOK(n *yaml.Node, w yamlWhere) bool {
	if n.Tag == "" || n.Tag == "!" {
		return true
	}
	tag := n.ShortTag()
	ok := false
	switch n.Kind {
	case yaml.MappingNode:
		ok = tag == "!!map"
	case yaml.SequenceNode:
		ok = tag == "!!seq"
	case yaml.ScalarNode:
		switch tag {
		case "!!str", "!!int", "!!float", "!!bool", "!!null", "!!binary", "!!timestamp", "!!merge":
			ok = true
		}
	}
	if !ok {
		d.add(PosOf(n), w, fmt.Sprintf("unsupported tag %q", n.Tag), "remove the tag")
	}
	return ok
}

// Describe says what a node is, for "expected X, got Y" messages.
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!int", "!!float", "!!bool":
			return Shorten(n.Value)
		case "!!binary":
			return "binary data"
		}
		return strconv.Quote(Shorten(n.Value))
	}
	return "nothing"
}

func Shorten(s string) string {
	const max = 40
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max]) + "…"
}

// yamlQuotedHint helps with `"5"` where a number or a boolean is wanted.
func yamlQuotedHint(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
		plain := yaml.Node{Kind: yaml.ScalarNode, Value: n.Value}
		if plain.ShortTag() != "!!str" {
			return "remove the quotes"
		}
	}
	return ""
}

var (
	yamlDurationType        = reflect.TypeOf(time.Duration(0))
	yamlNodeType            = reflect.TypeOf(yaml.Node{})
	yamlPosType             = reflect.TypeOf(Pos{})
	yamlTextUnmarshalerType = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
	yamlTextType            = reflect.TypeOf((*Text)(nil)).Elem()
)

// value decodes n into v, which must be settable.
func (d *yamlDecoder) value(n *yaml.Node, v reflect.Value, w yamlWhere) {
	at := PosOf(n)
	t, ok := d.enter(n, w)
	if !ok {
		return
	}
	defer d.leave(t)
	if n == nil || n.Kind == yaml.DocumentNode {
		at = PosOf(t)
	}
	if d.opts.Index != nil {
		d.record(w, at)
	}
	if d.tagOK(t, w) {
		d.resolved(t, v, w, at)
	}
}

// resolved decodes a node that is neither an alias nor a document. at is
// where the value is written in the file (the alias, for an alias).
func (d *yamlDecoder) resolved(n *yaml.Node, v reflect.Value, w yamlWhere, at Pos) {
	if !v.CanSet() {
		return
	}
	null := IsNull(n)

	if v.Kind() == reflect.Pointer {
		elem := v.Type().Elem()
		if null && elem.Kind() != reflect.Struct {
			v.SetZero()
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(elem))
		}
		d.resolved(n, v.Elem(), w, at)
		return
	}

	if nd, ok := v.Addr().Interface().(NodeDecoder); ok {
		nd.DecodeNode(n, w.path(), d.probs)
		return
	}
	switch v.Type() {
	case yamlNodeType:
		v.Set(reflect.ValueOf(*n))
		return
	case yamlDurationType:
		if null {
			v.SetZero()
		} else {
			d.duration(n, v, w)
		}
		return
	}
	if v.Type().Implements(yamlTextType) && reflect.PointerTo(v.Type()).Implements(yamlTextUnmarshalerType) {
		d.text(n, v, w, null)
		return
	}
	if null {
		if v.Kind() == reflect.Struct {
			d.structValue(n, v, w, at)
		} else {
			v.SetZero()
		}
		return
	}
	if tu, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		if n.Kind != yaml.ScalarNode {
			d.add(at, w, "expected a string, got "+Describe(n), "")
			return
		}
		if err := tu.UnmarshalText([]byte(n.Value)); err != nil {
			d.add(at, w, fmt.Sprintf("%s is not a valid %s: %v", Describe(n), v.Type(), err), "")
		}
		return
	}

	switch v.Kind() {
	case reflect.String:
		if s, ok := d.scalarString(n, w, "a string"); ok {
			if x := d.expandTagged(s, n, w); x != nil {
				s = x.Reveal()
				if x.HoldsSecret() {
					// Only a Secret field keeps a secret from being
					// printed; this one keeps what the file wrote.
					d.add(PosOf(n), w, "${env:...} is not allowed here: "+w.path()+" is not a secret field",
						"secrets go in urls, headers, bodies, passwords, bearer tokens, webhooks, an exec probe's env and plugin parameters")
					s = x.Written()
				}
			}
			v.SetString(s)
		}
	case reflect.Bool:
		if b, ok := d.boolean(n, w); ok {
			v.SetBool(b)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		d.signed(n, v, w)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		d.unsigned(n, v, w)
	case reflect.Float32, reflect.Float64:
		if f, ok := d.float(n, w); ok {
			if v.OverflowFloat(f) {
				d.add(PosOf(n), w, fmt.Sprintf("%s is out of range for %s", n.Value, v.Kind()), "")
				return
			}
			v.SetFloat(f)
		}
	case reflect.Struct:
		d.structValue(n, v, w, at)
	case reflect.Slice:
		d.slice(n, v, w)
	case reflect.Array:
		d.array(n, v, w)
	case reflect.Map:
		d.mapValue(n, v, w)
	case reflect.Interface:
		if v.NumMethod() != 0 {
			d.add(PosOf(n), w, fmt.Sprintf("cannot decode into %s", v.Type()), "")
			return
		}
		if x := d.plainResolved(n, w); x != nil {
			v.Set(reflect.ValueOf(x))
		} else {
			v.SetZero()
		}
	default:
		d.add(PosOf(n), w, fmt.Sprintf("cannot decode into %s", v.Type()), "")
	}
}

// text decodes a text field (see Text): Expand's result when it has the
// field's type, the plain text otherwise.
func (d *yamlDecoder) text(n *yaml.Node, v reflect.Value, w yamlWhere, null bool) {
	if null {
		v.SetZero()
		return
	}
	s, ok := d.scalarString(n, w, "a string")
	if !ok {
		return
	}
	if n.ShortTag() == "!!str" {
		if x := d.expand(s, n, w); x != nil && reflect.TypeOf(x) == v.Type() {
			v.Set(reflect.ValueOf(x))
			return
		}
	}
	if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
		d.add(PosOf(n), w, fmt.Sprintf("%s is not a valid %s: %v", Describe(n), v.Type(), err), "")
	}
}

func (d *yamlDecoder) wrongKind(n *yaml.Node, w yamlWhere, want string) {
	d.add(PosOf(n), w, fmt.Sprintf("expected %s, got %s", want, Describe(n)), yamlQuotedHint(n))
}

// scalarString accepts any scalar as text: `version: 1` is the string "1".
func (d *yamlDecoder) scalarString(n *yaml.Node, w yamlWhere, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.wrongKind(n, w, want)
		return "", false
	}
	if n.ShortTag() == "!!binary" {
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(n.Value), ""))
		if err != nil {
			d.add(PosOf(n), w, "!!binary value is not valid base64", "")
			return "", false
		}
		return string(b), true
	}
	return n.Value, true
}

func (d *yamlDecoder) boolean(n *yaml.Node, w yamlWhere) (bool, bool) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		switch strings.ToLower(n.Value) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	d.wrongKind(n, w, "true or false")
	return false, false
}

func yamlDigits(s string) string { return strings.ReplaceAll(s, "_", "") }

func (d *yamlDecoder) signed(n *yaml.Node, v reflect.Value, w yamlWhere) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.wrongKind(n, w, "an integer")
		return
	}
	i, err := strconv.ParseInt(yamlDigits(n.Value), 0, 64)
	if err != nil && !yamlOutOfRange(err) {
		d.wrongKind(n, w, "an integer")
		return
	}
	if err != nil || v.OverflowInt(i) {
		d.add(PosOf(n), w, fmt.Sprintf("%s is out of range for %s", Shorten(n.Value), v.Kind()), "")
		return
	}
	v.SetInt(i)
}

func (d *yamlDecoder) unsigned(n *yaml.Node, v reflect.Value, w yamlWhere) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.wrongKind(n, w, "an integer")
		return
	}
	s := yamlDigits(n.Value)
	if strings.HasPrefix(s, "-") {
		d.add(PosOf(n), w, fmt.Sprintf("%s is out of range for %s", Shorten(n.Value), v.Kind()), "it must not be negative")
		return
	}
	u, err := strconv.ParseUint(s, 0, 64)
	if err != nil && !yamlOutOfRange(err) {
		d.wrongKind(n, w, "an integer")
		return
	}
	if err != nil || v.OverflowUint(u) {
		d.add(PosOf(n), w, fmt.Sprintf("%s is out of range for %s", Shorten(n.Value), v.Kind()), "")
		return
	}
	v.SetUint(u)
}

func yamlOutOfRange(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

func (d *yamlDecoder) float(n *yaml.Node, w yamlWhere) (float64, bool) {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!int":
			if i, err := strconv.ParseInt(yamlDigits(n.Value), 0, 64); err == nil {
				return float64(i), true
			}
			if u, err := strconv.ParseUint(yamlDigits(n.Value), 0, 64); err == nil {
				return float64(u), true
			}
			if f, err := strconv.ParseFloat(yamlDigits(n.Value), 64); err == nil {
				return f, true
			}
		case "!!float":
			switch strings.ToLower(n.Value) {
			case ".inf", "+.inf":
				return math.Inf(1), true
			case "-.inf":
				return math.Inf(-1), true
			case ".nan":
				return math.NaN(), true
			}
			if f, err := strconv.ParseFloat(yamlDigits(n.Value), 64); err == nil {
				return f, true
			}
		}
	}
	d.wrongKind(n, w, "a number")
	return 0, false
}

const yamlDurationHelp = "use a number with a unit, e.g. 500ms, 30s, 5m"

func (d *yamlDecoder) duration(n *yaml.Node, v reflect.Value, w yamlWhere) {
	if n.Kind != yaml.ScalarNode {
		d.wrongKind(n, w, "a duration")
		return
	}
	s := strings.TrimSpace(n.Value)
	if dur, err := time.ParseDuration(s); err == nil {
		if s != "0" && strings.Trim(s, "+-0123456789.") == "" {
			// ParseDuration accepts only "0" without a unit, but be explicit.
			d.add(PosOf(n), w, fmt.Sprintf("%q is not a duration: it has no unit (%s)", Shorten(s), yamlDurationHelp), "")
			return
		}
		v.SetInt(int64(dur))
		return
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		d.add(PosOf(n), w, fmt.Sprintf("%q is not a duration: it has no unit (%s)", Shorten(s), yamlDurationHelp), "")
		return
	}
	hint := ""
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if f, err := strconv.ParseFloat(days, 64); err == nil {
			hint = fmt.Sprintf("durations have no days; use hours: %sh", strconv.FormatFloat(f*24, 'f', -1, 64))
		}
	}
	d.add(PosOf(n), w, fmt.Sprintf("%q is not a duration (%s)", Shorten(s), yamlDurationHelp), hint)
}

func (d *yamlDecoder) slice(n *yaml.Node, v reflect.Value, w yamlWhere) {
	if v.Type().Elem().Kind() == reflect.Uint8 && n.Kind == yaml.ScalarNode {
		if s, ok := d.scalarString(n, w, "a list"); ok {
			v.SetBytes([]byte(s))
		}
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.wrongKind(n, w, "a list")
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, c := range n.Content {
		d.value(c, s.Index(i), w.item(i))
	}
	v.Set(s)
}

func (d *yamlDecoder) array(n *yaml.Node, v reflect.Value, w yamlWhere) {
	if n.Kind != yaml.SequenceNode {
		d.wrongKind(n, w, "a list")
		return
	}
	if len(n.Content) != v.Len() {
		d.add(PosOf(n), w, fmt.Sprintf("expected a list of %d items, got %d", v.Len(), len(n.Content)), "")
	}
	for i, c := range n.Content {
		if i >= v.Len() {
			break
		}
		d.value(c, v.Index(i), w.item(i))
	}
}

func (d *yamlDecoder) mapValue(n *yaml.Node, v reflect.Value, w yamlWhere) {
	if n.Kind != yaml.MappingNode {
		d.wrongKind(n, w, "a mapping")
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	kt, et := v.Type().Key(), v.Type().Elem()
	for _, e := range d.entries(n, w) {
		ew := w.field(e.name, PosOf(e.key))
		kv := reflect.New(kt).Elem()
		if kt.Kind() == reflect.String {
			kv.SetString(e.name)
		} else {
			d.value(e.key, kv, ew)
		}
		// Bad values are reported and kept: the rest of the map still
		// decodes, and validation can still point at the entry.
		ev := reflect.New(et).Elem()
		d.value(e.val, ev, ew)
		if !e.dup && kv.Type().Comparable() {
			v.SetMapIndex(kv, ev)
		}
	}
}

// yamlEntry is one key and value of a mapping, after merge keys have been
// expanded. dup marks a key seen before in the same mapping: its value is
// still checked, but not stored.
type yamlEntry struct {
	key, val *yaml.Node
	name     string
	dup      bool
}

// yamlIsMerge reports a `<<` key. The parser tags a plain `<<` !!merge; a
// quoted one is an ordinary string.
func yamlIsMerge(k *yaml.Node) bool {
	if k == nil || k.Kind != yaml.ScalarNode || k.Value != "<<" {
		return false
	}
	if k.Tag == "" || k.Tag == "!" {
		return k.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) == 0
	}
	return k.ShortTag() == "!!merge"
}

// keyName returns the text of a mapping key, which must be a scalar.
func (d *yamlDecoder) keyName(k *yaml.Node, w yamlWhere) (string, bool) {
	if k == nil {
		return "", true
	}
	if k.Kind == yaml.AliasNode && k.Alias != nil {
		k = k.Alias
	}
	if k.Kind != yaml.ScalarNode {
		d.add(PosOf(k), w, "a key must be a string, got "+Describe(k), "")
		return "", false
	}
	return k.Value, true
}

// entries lists the keys and values of mapping n in document order, with
// merged mappings placed where their `<<` key is. Keys written in n override
// merged ones, and earlier merged mappings override later ones, as the YAML
// merge key type says.
func (d *yamlDecoder) entries(n *yaml.Node, w yamlWhere) []yamlEntry {
	// Merges copy entries without decoding them, so count them here too.
	if !d.spend(len(n.Content)/2, n, w) {
		return nil
	}
	explicit := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if yamlIsMerge(k) || k == nil {
			continue
		}
		kk := k
		if kk.Kind == yaml.AliasNode && kk.Alias != nil {
			kk = kk.Alias
		}
		if kk.Kind == yaml.ScalarNode {
			explicit[kk.Value] = true
		}
	}
	var out []yamlEntry
	first := map[string]Pos{}
	merged := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if yamlIsMerge(k) {
			for _, e := range d.merge(val, w) {
				if explicit[e.name] || merged[e.name] {
					continue
				}
				merged[e.name] = true
				out = append(out, e)
			}
			continue
		}
		name, ok := d.keyName(k, w)
		if !ok {
			continue
		}
		e := yamlEntry{key: k, val: val, name: name}
		if p, seen := first[name]; seen {
			d.add(PosOf(k), w.field(name, Pos{}), fmt.Sprintf("duplicate key %q", name), "first defined at "+p.String())
			e.dup = true
		} else {
			first[name] = PosOf(k)
		}
		out = append(out, e)
	}
	return out
}

// merge expands the value of a `<<` key: a mapping or a list of mappings.
func (d *yamlDecoder) merge(val *yaml.Node, w yamlWhere) []yamlEntry {
	t, ok := d.enter(val, w)
	if !ok {
		return nil
	}
	defer d.leave(t)
	switch t.Kind {
	case yaml.MappingNode:
		return d.entries(t, w)
	case yaml.SequenceNode:
		var out []yamlEntry
		seen := map[string]bool{}
		for _, c := range t.Content {
			ct, ok := d.enter(c, w)
			if !ok {
				continue
			}
			if ct.Kind != yaml.MappingNode {
				d.add(PosOf(c), w, "<< needs a mapping or a list of mappings, got "+Describe(ct), "")
				d.leave(ct)
				continue
			}
			for _, e := range d.entries(ct, w) {
				if !seen[e.name] {
					seen[e.name] = true
					out = append(out, e)
				}
			}
			d.leave(ct)
		}
		return out
	}
	d.add(PosOf(val), w, "<< needs a mapping or a list of mappings, got "+Describe(t), "")
	return nil
}

// yamlField is one decodable struct field; index may reach into inlined
// structs, depth says how deep.
type yamlField struct {
	name  string
	index []int
	typ   reflect.Type
	depth int
}

type yamlStructInfo struct {
	fields      []yamlField // in declaration order, inlined fields in place
	byName      map[string]int
	pos, keyPos [][]int
}

func (d *yamlDecoder) info(t reflect.Type) *yamlStructInfo {
	if si, ok := d.infos[t]; ok {
		return si
	}
	si := &yamlStructInfo{byName: map[string]int{}}
	d.infos[t] = si
	all := yamlCollect(t, nil, si)
	// A field of the outer struct wins over an inlined one of the same
	// name, as with Go's own promotion; at equal depth the first wins.
	winner := map[string]int{}
	for i, f := range all {
		if w, ok := winner[f.name]; !ok || f.depth < all[w].depth {
			winner[f.name] = i
		}
	}
	for i, f := range all {
		if winner[f.name] == i {
			si.byName[f.name] = len(si.fields)
			si.fields = append(si.fields, f)
		}
	}
	return si
}

func yamlCollect(t reflect.Type, prefix []int, si *yamlStructInfo) []yamlField {
	var out []yamlField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		index := append(append([]int(nil), prefix...), i)
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			if f.Type == yamlPosType {
				switch f.Name {
				case "Pos":
					si.pos = append(si.pos, index)
				case "KeyPos":
					si.keyPos = append(si.keyPos, index)
				}
			}
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct && (f.IsExported() || f.Anonymous) {
			// An unexported embedded struct still promotes its exported
			// fields, which reflection can set.
			out = append(out, yamlCollect(f.Type, index, si)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = LowerCamel(f.Name)
		}
		out = append(out, yamlField{name: name, index: index, typ: f.Type, depth: len(prefix)})
	}
	return out
}

// LowerCamel turns a Go field name into its key: MaxDuration →
// maxDuration, HTTP → http, URLPath → urlPath.
func LowerCamel(s string) string {
	r := []rune(s)
	n := 0
	for n < len(r) && unicode.IsUpper(r[n]) {
		n++
	}
	if n > 1 && n < len(r) && unicode.IsLower(r[n]) {
		n-- // the last capital starts the next word
	}
	for i := 0; i < n; i++ {
		r[i] = unicode.ToLower(r[i])
	}
	return string(r)
}

func (d *yamlDecoder) structValue(n *yaml.Node, v reflect.Value, w yamlWhere, at Pos) {
	si := d.info(v.Type())
	for _, ix := range si.pos {
		if f := v.FieldByIndex(ix); f.CanSet() {
			f.Set(reflect.ValueOf(at))
		}
	}
	for _, ix := range si.keyPos {
		if f := v.FieldByIndex(ix); f.CanSet() {
			f.Set(reflect.ValueOf(w.key))
		}
	}
	if IsNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		if w.isRoot() {
			d.add(PosOf(n), w, "expected a mapping at the top level, got "+Describe(n), "")
			return
		}
		d.wrongKind(n, w, "a mapping")
		return
	}
	for _, e := range d.entries(n, w) {
		ew := w.field(e.name, PosOf(e.key))
		i, ok := si.byName[e.name]
		if !ok {
			d.add(PosOf(e.key), ew, fmt.Sprintf("unknown field %q in %s", e.name, w.context()), si.hint(e.name))
			continue
		}
		f := si.fields[i]
		fv := v.FieldByIndex(f.index)
		if e.dup || !fv.CanSet() {
			fv = reflect.New(f.typ).Elem()
		}
		d.value(e.val, fv, ew)
	}
}

// hint suggests the field the user probably meant, or lists them all.
func (si *yamlStructInfo) hint(name string) string {
	if len(si.fields) == 0 {
		return "no fields are allowed here"
	}
	names := make([]string, len(si.fields))
	for i, f := range si.fields {
		names[i] = f.name
	}
	return DidYouMean(name, names, "allowed: "+strings.Join(names, ", "))
}

// Distance is the optimal string alignment distance: edits plus
// transpositions of neighbours, each costing one.
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		if a == b {
			return 0
		}
		return 1 << 20
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// plain decodes n into the plain Go values used for plugin parameters.
func (d *yamlDecoder) plain(n *yaml.Node, w yamlWhere) any {
	t, ok := d.enter(n, w)
	if !ok {
		return nil
	}
	defer d.leave(t)
	if d.opts.Index != nil {
		d.record(w, PosOf(n))
	}
	if !d.tagOK(t, w) {
		return nil
	}
	return d.plainResolved(t, w)
}

func (d *yamlDecoder) plainResolved(n *yaml.Node, w yamlWhere) any {
	switch n.Kind {
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, c := range n.Content {
			out[i] = d.plain(c, w.item(i))
		}
		return out
	case yaml.MappingNode:
		out := map[string]any{}
		for _, e := range d.entries(n, w) {
			x := d.plain(e.val, w.field(e.name, PosOf(e.key)))
			if !e.dup {
				out[e.name] = x
			}
		}
		return out
	case yaml.ScalarNode:
	default:
		return nil
	}
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		b, _ := d.boolean(n, w)
		return b
	case "!!int":
		i, err := strconv.ParseInt(yamlDigits(n.Value), 0, 64)
		if err == nil && int64(int(i)) == i {
			return int(i)
		}
		if f, ok := d.float(n, w); ok {
			return f
		}
		return nil
	case "!!float":
		f, _ := d.float(n, w)
		return f
	case "!!binary":
		s, _ := d.scalarString(n, w, "a string")
		return s
	case "!!str":
		x := d.expand(n.Value, n, w)
		if x == nil {
			return n.Value
		}
		if x.HoldsSecret() {
			return x
		}
		return x.Reveal()
	}
	return n.Value
}
