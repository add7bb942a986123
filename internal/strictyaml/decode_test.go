package strictyaml

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// The types below are local to these tests so that the decoder is checked on
// its own, whatever shape the experiment types take.

type decTestHTTP struct {
	URL     string        `yaml:"url"`
	Timeout time.Duration `yaml:"timeout"`
	Method  string        `yaml:"method,omitempty"`
	Pos     Pos           `yaml:"-"`
	KeyPos  Pos           `yaml:"-"`
}

type decTestProbe struct {
	HTTP   *decTestHTTP  `yaml:"http"`
	Every  time.Duration `yaml:"every"`
	Pos    Pos           `yaml:"-"`
	KeyPos Pos           `yaml:"-"`
}

type decTestFault struct {
	Plugin string         `yaml:"plugin"`
	With   map[string]any `yaml:"with"`
	For    time.Duration  `yaml:"for"`
	Pos    Pos            `yaml:"-"`
}

type decTestOwner struct {
	Team  string `yaml:"team"`
	Email string `yaml:"email"`
}

type decTestCommon struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
}

// decTestExpr decodes itself, as expressions do.
type decTestExpr struct {
	Src  string
	Pos  Pos
	Path string
}

func (e *decTestExpr) DecodeNode(n *yaml.Node, path string, probs *[]Problem) {
	e.Pos, e.Path = Pos{n.Line, n.Column}, path
	if n.Kind != yaml.ScalarNode || n.Value == "" {
		*probs = append(*probs, Problem{Pos: e.Pos, Path: path, Message: "expected an expression"})
		return
	}
	e.Src = n.Value
}

type decTestDoc struct {
	decTestCommon `yaml:",inline"`
	Name          string
	Enabled       bool
	Count         int
	Small         int8
	Replicas      uint
	Ratio         float64
	MaxDuration   time.Duration
	Tags          []string
	Owner         *decTestOwner
	Probes        map[string]decTestProbe
	Faults        []decTestFault
	Check         decTestExpr
	Checks        []decTestExpr
	Extra         any
	Ignored       string `yaml:"-"`
	Pos           Pos    `yaml:"-"`
}

// decodeString parses src and decodes it into a fresh decTestDoc.
func decodeString(t *testing.T, src string) (decTestDoc, []Problem) {
	t.Helper()
	var node yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &node), "the test document must be valid YAML")
	var doc decTestDoc
	var probs []Problem
	Decode(&node, &doc, &probs)
	return doc, probs
}

// where lists problems as "line:col message" for compact assertions.
func where(probs []Problem) []string {
	out := make([]string, len(probs))
	for i, p := range probs {
		out[i] = p.Pos.String() + " " + p.Message
	}
	return out
}

func TestDecodeValidDocument(t *testing.T) {
	src := `apiVersion: chaos/v1
kind: Experiment
name: checkout
enabled: true
count: 3
replicas: 2
ratio: 0.5
maxDuration: 5m
tags: [a, b]
owner: {team: payments, email: p@example.com}
probes:
  checkout:
    http: {url: http://x, timeout: 1s}
    every: 2s
faults:
  - plugin: latency
    with: {delay: 200ms}
    for: 60s
check: checkout.status == 200
`
	doc, probs := decodeString(t, src)
	require.Empty(t, probs, "a valid document must have no problems")
	require.Equal(t, "chaos/v1", doc.APIVersion, "inlined fields must be decoded")
	require.Equal(t, "Experiment", doc.Kind, "inlined fields must be decoded")
	require.Equal(t, "checkout", doc.Name, "untagged fields use the lowerCamel name")
	require.True(t, doc.Enabled, "bool")
	require.Equal(t, 3, doc.Count, "int")
	require.Equal(t, uint(2), doc.Replicas, "uint")
	require.InDelta(t, 0.5, doc.Ratio, 1e-9, "float")
	require.Equal(t, 5*time.Minute, doc.MaxDuration, "durations are parsed from strings")
	require.Equal(t, []string{"a", "b"}, doc.Tags, "slices")
	require.Equal(t, &decTestOwner{Team: "payments", Email: "p@example.com"}, doc.Owner, "pointers are allocated")
	require.Equal(t, Pos{1, 1}, doc.Pos, "the top-level struct gets the position of the mapping")

	probe, ok := doc.Probes["checkout"]
	require.True(t, ok, "map values are decoded by key")
	require.Equal(t, 2*time.Second, probe.Every, "map values are decoded")
	require.Equal(t, Pos{13, 5}, probe.Pos, "Pos is where the map value starts")
	require.Equal(t, Pos{12, 3}, probe.KeyPos, "KeyPos is where the map key is")
	require.NotNil(t, probe.HTTP, "a present pointer field is allocated")
	require.Equal(t, decTestHTTP{URL: "http://x", Timeout: time.Second, Pos: Pos{13, 11}, KeyPos: Pos{13, 5}}, *probe.HTTP,
		"a field value gets both its own and its key's position")

	require.Len(t, doc.Faults, 1, "lists")
	require.Equal(t, "latency", doc.Faults[0].Plugin, "list items are decoded")
	require.Equal(t, map[string]any{"delay": "200ms"}, doc.Faults[0].With, "map[string]any holds plain values")
	require.Equal(t, Pos{16, 5}, doc.Faults[0].Pos, "a list item's Pos is where the item starts")
	require.Equal(t, "checkout.status == 200", doc.Check.Src, "NodeDecoder types decode themselves")
}

func TestDecodeUnknownField(t *testing.T) {
	src := `name: x
probes:
  checkout:
    http:
      url: http://x
      timout: 1s
    evry: 1s
    bogus: 1
`
	_, probs := decodeString(t, src)
	require.Equal(t, []Problem{
		{Pos: Pos{6, 7}, Path: "probes.checkout.http.timout", Message: `unknown field "timout" in http`, Hint: `did you mean "timeout"?`},
		{Pos: Pos{7, 5}, Path: "probes.checkout.evry", Message: `unknown field "evry" in checkout`, Hint: `did you mean "every"?`},
		{Pos: Pos{8, 5}, Path: "probes.checkout.bogus", Message: `unknown field "bogus" in checkout`, Hint: "allowed: http, every"},
	}, probs, "an unknown field is reported at its key, with a suggestion or the allowed fields")
}

func TestDecodeUnknownFieldHints(t *testing.T) {
	_, probs := decodeString(t, "Name: x\nmaxduration: 1s\nnmae: y\nzzz: 1\n")
	require.Len(t, probs, 4, "each unknown field is a problem")
	require.Equal(t, `unknown field "Name" in the top level`, probs[0].Message, "the top level is named as such")
	require.Equal(t, `did you mean "name"?`, probs[0].Hint, "a case-insensitive match is suggested")
	require.Equal(t, `did you mean "maxDuration"?`, probs[1].Hint, "a case-insensitive match is suggested")
	require.Equal(t, `did you mean "name"?`, probs[2].Hint, "a transposition is one edit")
	require.True(t, strings.HasPrefix(probs[3].Hint, "allowed: apiVersion, kind, name, enabled"), "without a close match, the allowed fields are listed in declaration order, got %q", probs[3].Hint)
	require.NotContains(t, probs[3].Hint, "ignored", `fields tagged yaml:"-" are not allowed in the file`)
}

func TestDecodeDuration(t *testing.T) {
	for _, tc := range []struct {
		value, message, hint string
		want                 time.Duration
	}{
		{value: "500ms", want: 500 * time.Millisecond},
		{value: "1h30m", want: 90 * time.Minute},
		{value: "0", want: 0},
		{value: "5 minutes", message: `"5 minutes" is not a duration (use a number with a unit, e.g. 500ms, 30s, 5m)`},
		{value: "30", message: `"30" is not a duration: it has no unit (use a number with a unit, e.g. 500ms, 30s, 5m)`},
		{value: "1.5", message: `"1.5" is not a duration: it has no unit (use a number with a unit, e.g. 500ms, 30s, 5m)`},
		{value: `"30"`, message: `"30" is not a duration: it has no unit (use a number with a unit, e.g. 500ms, 30s, 5m)`},
		{value: "30d", message: `"30d" is not a duration (use a number with a unit, e.g. 500ms, 30s, 5m)`, hint: "durations have no days; use hours: 720h"},
		{value: "[1s]", message: "expected a duration, got a list"},
	} {
		t.Run(tc.value, func(t *testing.T) {
			doc, probs := decodeString(t, "name: x\nmaxDuration: "+tc.value+"\n")
			if tc.message == "" {
				require.Empty(t, probs, "%q is a valid duration", tc.value)
				require.Equal(t, tc.want, doc.MaxDuration, "the parsed duration")
				return
			}
			require.Equal(t, []Problem{{Pos: Pos{2, 14}, Path: "maxDuration", Message: tc.message, Hint: tc.hint}}, probs,
				"a bad duration is reported at its value")
		})
	}
}

func TestDecodeWrongKinds(t *testing.T) {
	for _, tc := range []struct {
		src, message, hint string
		at                 Pos
	}{
		{src: "name: {a: 1}", at: Pos{1, 7}, message: "expected a string, got a mapping"},
		{src: "name:\n  - a", at: Pos{2, 3}, message: "expected a string, got a list"},
		{src: "count: abc", at: Pos{1, 8}, message: `expected an integer, got "abc"`},
		{src: "count: 1.5", at: Pos{1, 8}, message: "expected an integer, got 1.5"},
		{src: `count: "5"`, at: Pos{1, 8}, message: `expected an integer, got "5"`, hint: "remove the quotes"},
		{src: "small: 300", at: Pos{1, 8}, message: "300 is out of range for int8"},
		{src: "replicas: -1", at: Pos{1, 11}, message: "-1 is out of range for uint", hint: "it must not be negative"},
		{src: "ratio: high", at: Pos{1, 8}, message: `expected a number, got "high"`},
		{src: "tags: a", at: Pos{1, 7}, message: `expected a list, got "a"`},
		{src: "owner: payments", at: Pos{1, 8}, message: `expected a mapping, got "payments"`},
		{src: "probes: [a]", at: Pos{1, 9}, message: "expected a mapping, got a list"},
		{src: "name: !custom x", at: Pos{1, 7}, message: `unsupported tag "!custom"`, hint: "remove the tag"},
		{src: "{a: 1}: x", at: Pos{1, 1}, message: "a key must be a string, got a mapping"},
	} {
		t.Run(tc.src, func(t *testing.T) {
			_, probs := decodeString(t, tc.src+"\n")
			require.Len(t, probs, 1, "one problem expected, got %v", where(probs))
			require.Equal(t, tc.at, probs[0].Pos, "the problem points at the value")
			require.Equal(t, tc.message, probs[0].Message, "the message says what was expected")
			require.Equal(t, tc.hint, probs[0].Hint, "the hint")
		})
	}
}

func TestDecodeBool(t *testing.T) {
	for _, tc := range []struct {
		value, message, hint string
		want                 bool
	}{
		{value: "true", want: true},
		{value: "false", want: false},
		{value: "True", want: true},
		{value: "yes", message: `expected true or false, got "yes"`},
		{value: "1", message: "expected true or false, got 1"},
		{value: `"true"`, message: `expected true or false, got "true"`, hint: "remove the quotes"},
	} {
		t.Run(tc.value, func(t *testing.T) {
			doc, probs := decodeString(t, "name: x\nenabled:   "+tc.value+"\n")
			if tc.message == "" {
				require.Empty(t, probs, "%s is a boolean", tc.value)
				require.Equal(t, tc.want, doc.Enabled, "the parsed boolean")
				return
			}
			require.Equal(t, []Problem{{Pos: Pos{2, 12}, Path: "enabled", Message: tc.message, Hint: tc.hint}}, probs,
				"only true and false are booleans")
		})
	}
}

func TestDecodeDuplicateKey(t *testing.T) {
	src := `name: a
probes:
  p: {every: 1s}
  p: {every: 2s, evry: 1s}
name: b
`
	doc, probs := decodeString(t, src)
	require.Equal(t, []Problem{
		{Pos: Pos{4, 3}, Path: "probes.p", Message: `duplicate key "p"`, Hint: "first defined at 3:3"},
		{Pos: Pos{4, 18}, Path: "probes.p.evry", Message: `unknown field "evry" in p`, Hint: `did you mean "every"?`},
		{Pos: Pos{5, 1}, Path: "name", Message: `duplicate key "name"`, Hint: "first defined at 1:1"},
	}, probs, "a duplicate is reported at the second key, and its value is still checked")
	require.Equal(t, "a", doc.Name, "the first of duplicate keys is kept")
	require.Equal(t, time.Second, doc.Probes["p"].Every, "the first of duplicate map keys is kept")
}

func TestDecodeEveryProblemInDocumentOrder(t *testing.T) {
	src := `kind: [Experiment]
enabled: yes
probes:
  a:
    every: soon
    http: {url: http://x, timeout: 1}
  b: 7
faults:
  - {plugin: latency, for: forever}
  - plugn: podkill
check: {a: 1}
extra: *missing
`
	var node yaml.Node
	err := yaml.Unmarshal([]byte(src), &node)
	if err != nil {
		// yaml.v3 rejects unknown aliases itself; the rest still shows order.
		src = strings.Replace(src, "extra: *missing\n", "", 1)
		require.NoError(t, yaml.Unmarshal([]byte(src), &node), "the test document must be valid YAML")
	}
	var doc decTestDoc
	probs := []Problem{{Message: "already there"}}
	Decode(&node, &doc, &probs)
	require.Equal(t, []string{
		"0:0 already there",
		`1:7 expected a string, got a list`,
		`2:10 expected true or false, got "yes"`,
		`5:12 "soon" is not a duration (use a number with a unit, e.g. 500ms, 30s, 5m)`,
		`6:36 "1" is not a duration: it has no unit (use a number with a unit, e.g. 500ms, 30s, 5m)`,
		`7:6 expected a mapping, got 7`,
		`9:28 "forever" is not a duration (use a number with a unit, e.g. 500ms, 30s, 5m)`,
		`10:5 unknown field "plugn" in faults[1]`,
		`11:8 expected an expression`,
	}, where(probs), "every problem is appended, in document order, after those already there")
	require.Equal(t, "faults[1].plugn", probs[7].Path, "list items are written with an index in the path")
	require.Equal(t, `did you mean "plugin"?`, probs[7].Hint, "hint")
}

func TestDecodeNodeDecoder(t *testing.T) {
	src := `name: x
check: a > 1
checks:
  - b < 2
  -
  - ""
`
	doc, probs := decodeString(t, src)
	require.Equal(t, decTestExpr{Src: "a > 1", Pos: Pos{2, 8}, Path: "check"}, doc.Check, "the hook gets the node and the path")
	require.Len(t, doc.Checks, 3, "hooks work for list items")
	require.Equal(t, decTestExpr{Src: "b < 2", Pos: Pos{4, 5}, Path: "checks[0]"}, doc.Checks[0], "list item hook")
	require.Equal(t, []string{"5:4 expected an expression", "6:5 expected an expression"}, where(probs),
		"the hook is handed null nodes too, and its problems are kept in order")
}

func TestDecodeNullLeavesZero(t *testing.T) {
	doc, probs := decodeString(t, "name: ~\ncount:\ntags: ~\nmaxDuration: null\nextra:\nprobes:\n  p:\n  q: {http: }\n")
	require.Empty(t, probs, "null is a valid value for every field")
	require.Empty(t, doc.Name, "null string")
	require.Zero(t, doc.Count, "null int")
	require.Nil(t, doc.Tags, "null list")
	require.Zero(t, doc.MaxDuration, "null duration")
	require.Nil(t, doc.Extra, "null any")
	require.Equal(t, decTestProbe{Pos: Pos{7, 5}, KeyPos: Pos{7, 3}}, doc.Probes["p"],
		"a null struct is an empty mapping, positioned where its value would be")
	require.NotNil(t, doc.Probes["q"].HTTP, "a null pointer-to-struct is allocated, so `http:` means `http: {}`")
}

func TestDecodeAliasesAndMerges(t *testing.T) {
	src := `name: &n shared
tags: [*n, b]
probes:
  base: &base
    every: 5s
    http: &http {url: http://x, timeout: 1s}
  derived:
    <<: *base
    every: 1s
  other:
    http: *http
  bad:
    <<: [*http]
faults:
  - &f {plugin: latency, with: {d: &d [1, 2]}}
  - *f
extra: {ds: *d}
`
	doc, probs := decodeString(t, src)
	require.Equal(t, []string{
		`6:18 unknown field "url" in bad`,
		`6:33 unknown field "timeout" in bad`,
	}, where(probs), "fields merged from an anchor are checked where they are written")
	require.Equal(t, []string{"shared", "b"}, doc.Tags, "an alias stands for its anchored value")
	require.Equal(t, time.Second, doc.Probes["derived"].Every, "explicit keys override merged ones")
	require.Equal(t, "http://x", doc.Probes["derived"].HTTP.URL, "merged keys are decoded")
	require.Equal(t, Pos{11, 11}, doc.Probes["other"].HTTP.Pos, "Pos of an aliased struct is where the alias is used")
	require.Len(t, doc.Faults, 2, "aliased list items")
	require.Equal(t, doc.Faults[0].With, doc.Faults[1].With, "an aliased item decodes like its anchor")
	require.Equal(t, map[string]any{"ds": []any{1, 2}}, doc.Extra, "aliases inside plain values")
}

func TestDecodeAliasCycles(t *testing.T) {
	_, probs := decodeString(t, "extra: &a [1, *a]\n")
	require.Equal(t, []string{"1:8 alias *a refers to a value that contains it"}, where(probs), "a self-referencing alias is a problem, not a hang")

	_, probs = decodeString(t, "probes: &p\n  x:\n    <<: *p\n")
	require.Equal(t, []string{"1:9 alias *p refers to a value that contains it"}, where(probs), "a self-merging mapping is a problem, not a hang")

	var b strings.Builder
	b.WriteString("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		b.WriteString("l" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*l" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	var node yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte("extra:\n  "+strings.ReplaceAll(b.String(), "\n", "\n  ")), &node), "billion laughs parses as a node tree")
	var doc decTestDoc
	var probs2 []Problem
	Decode(&node, &doc, &probs2)
	require.Len(t, probs2, 1, "an alias bomb stops with one problem, got %v", where(probs2))
	require.Equal(t, "the file is too complex: its aliases expand to too many values", probs2[0].Message, "message")
}

func TestDecodeAny(t *testing.T) {
	src := `extra:
  s: text
  q: "5"
  i: 42
  h: 0x10
  f: 1.5
  inf: .inf
  b: false
  n: ~
  l: [1, two, {three: 3}]
  m: {k: v}
  t: 2001-12-14
  1: numeric key
`
	doc, probs := decodeString(t, src)
	require.Empty(t, probs, "plain values have no problems")
	m, ok := doc.Extra.(map[string]any)
	require.True(t, ok, "a mapping decodes to map[string]any, got %T", doc.Extra)
	require.Equal(t, "text", m["s"], "string")
	require.Equal(t, "5", m["q"], "a quoted number stays a string")
	require.Equal(t, 42, m["i"], "int")
	require.Equal(t, 16, m["h"], "hex int")
	require.Equal(t, 1.5, m["f"], "float64")
	require.Greater(t, m["inf"], 1e308, "YAML infinity")
	require.Equal(t, false, m["b"], "bool")
	require.Contains(t, m, "n", "a null value keeps its key")
	require.Nil(t, m["n"], "null")
	require.Equal(t, []any{1, "two", map[string]any{"three": 3}}, m["l"], "nested lists and maps")
	require.Equal(t, map[string]any{"k": "v"}, m["m"], "nested map")
	require.Equal(t, "2001-12-14", m["t"], "timestamps stay strings")
	require.Equal(t, "numeric key", m["1"], "keys are strings")
}

func TestDecodeTopLevel(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{src: "- a\n- b\n", want: "1:1 expected a mapping at the top level, got a list"},
		{src: "hello\n", want: `1:1 expected a mapping at the top level, got "hello"`},
		{src: "!!binary aGVsbG8=\n", want: "1:1 expected a mapping at the top level, got binary data"},
	} {
		_, probs := decodeString(t, tc.src)
		require.Equal(t, []string{tc.want}, where(probs), "a top-level non-mapping is one problem")
	}

	doc, probs := decodeString(t, "")
	require.Empty(t, probs, "an empty document is left to validation")
	require.Equal(t, decTestDoc{}, doc, "an empty document leaves the struct zero")

	var node yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte("name: x\n"), &node), "valid YAML")
	var doc2 decTestDoc
	var probs2 []Problem
	Decode(node.Content[0], &doc2, &probs2)
	require.Empty(t, probs2, "the mapping itself is accepted as well as the document")
	require.Equal(t, "x", doc2.Name, "decoded from the mapping node")

	Decode(&node, doc2, &probs2)
	require.Len(t, probs2, 1, "decoding into a non-pointer is reported, not a panic")
}

func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		"apiVersion: chaos/v1\nkind: Experiment\nname: x\nprobes:\n  a: {http: {url: u, timeout: 1s}, every: 1s}\n",
		"faults:\n  - {plugin: latency, with: {delay: 200ms, l: [1, 2.5, true, ~]}, for: 60s}\n",
		"a: &a [*a]\nb: &b {<<: *b}\nextra: *a\n",
		"probes: {x: &x {every: 1s}, y: {<<: [*x, *x]}}\nextra: !!binary aGk=\n",
		"- a\n- b\n",
		"? [a]\n: b\ncount: 0x1F\nsmall: 1000\nreplicas: -3\nratio: .nan\n",
		"check: ~\nchecks: [a, {b: c}]\nowner: ~\ntags: !!seq [a]\nname: !!int x\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var node yaml.Node
		if err := yaml.Unmarshal(data, &node); err != nil {
			return
		}
		var doc decTestDoc
		var probs []Problem
		Decode(&node, &doc, &probs)
		for i := 1; i < len(probs); i++ {
			a, b := probs[i-1].Pos, probs[i].Pos
			if a.Line > b.Line || a.Line == b.Line && a.Col > b.Col {
				t.Fatalf("problems out of document order: %v", where(probs))
			}
		}
		var plain any
		Decode(&node, &plain, &probs)
	})
}

func TestDecodeFieldNames(t *testing.T) {
	for goName, want := range map[string]string{
		"Name": "name", "MaxDuration": "maxDuration", "HTTP": "http", "URLPath": "urlPath",
		"APIVersion": "apiVersion", "HTTP2Server": "http2Server", "ID": "id", "A": "a",
	} {
		require.Equal(t, want, LowerCamel(goName), "the key for an untagged field %s", goName)
	}

	type inner struct {
		Name string `yaml:"name"`
		Deep string `yaml:"deep"`
	}
	type outer struct {
		inner `yaml:",inline"`
		Name  string `yaml:"name"`
	}
	var node yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte("name: top\ndeep: d\n\"<<\": {name: x}\n"), &node), "valid YAML")
	var out outer
	var probs []Problem
	Decode(&node, &out, &probs)
	require.Equal(t, "top", out.Name, "the outer field wins over an inlined one of the same name")
	require.Empty(t, out.inner.Name, "the shadowed inlined field is not set")
	require.Equal(t, "d", out.Deep, "an unexported embedded struct still receives its promoted fields")
	require.Equal(t, []string{`3:1 unknown field "<<" in the top level`}, where(probs), "a quoted << is an ordinary key, not a merge")
}
