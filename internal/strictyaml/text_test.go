package strictyaml

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// testText is a text field as the format's Secret is one: Expand's result
// is kept whole in a field of its type and refused by a plain string field.
type testText struct {
	value, written string
	secret         bool
}

func (t testText) Reveal() string    { return t.value }
func (t testText) Written() string   { return t.written }
func (t testText) HoldsSecret() bool { return t.secret }
func (t *testText) UnmarshalText(b []byte) error {
	*t = testText{value: string(b), written: string(b)}
	return nil
}

func testExpand(s string, _ *yaml.Node, _ string, _ *[]Problem) Text {
	if strings.HasPrefix(s, "$") {
		return testText{value: "resolved", written: s, secret: true}
	}
	return testText{value: s, written: s}
}

func TestDecodeWithExpand(t *testing.T) {
	type doc struct {
		Token testText       `yaml:"token"`
		Port  testText       `yaml:"port"`
		Name  string         `yaml:"name"`
		Env   string         `yaml:"env"`
		With  map[string]any `yaml:"with"`
	}
	src := "token: $TOKEN\nport: 8080\nname: shop\nenv: $HOME\nwith: {a: $X, b: plain}\n"
	var root yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &root))
	var out doc
	var probs []Problem
	index := map[string]FieldPos{}
	DecodeWith(&root, &out, &probs, Options{Index: index, Expand: testExpand})

	require.Equal(t, "resolved", out.Token.Reveal(), "a text field keeps Expand's result")
	require.True(t, out.Token.HoldsSecret(), "and knows it holds a secret")
	require.Equal(t, "8080", out.Port.Reveal(), "a scalar that is not a string is not expanded but still text")
	require.Equal(t, "shop", out.Name, "plain strings go through Expand unchanged")
	require.Equal(t, "$HOME", out.Env, "a plain string field keeps what the file wrote when Expand finds a secret")
	require.Equal(t, testText{value: "resolved", written: "$X", secret: true}, out.With["a"], "an any value keeps a secret whole")
	require.Equal(t, "plain", out.With["b"], "an any value without a secret is a plain string")
	require.Len(t, probs, 1, "only the secret in a plain string field is a problem: %v", probs)
	require.Equal(t, Pos{Line: 4, Col: 6}, probs[0].Pos, "the problem points at the value")
	require.Equal(t, "env", probs[0].Path, "and names its path")
	require.Equal(t, FieldPos{Key: Pos{Line: 1, Col: 1}, Value: Pos{Line: 1, Col: 8}}, index["token"], "the index has every field's key and value")
}
