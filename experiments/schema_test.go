package experiments_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/plugins/builtin"
)

// builtinSchema is what `chaos schema` prints: the format with the built-in
// plugins' parameter schemas.
func builtinSchema(t *testing.T) []byte {
	t.Helper()
	params := map[string]json.RawMessage{}
	for name, mk := range builtin.Faults() {
		params[name] = mk().Describe().ParamsSchema
	}
	b, err := experiments.JSONSchema(experiments.SchemaOptions{PluginParams: params})
	require.NoError(t, err)
	return b
}

// TestSchemaIsUpToDate keeps experiments/schema.json, the copy editors are
// pointed at, equal to what the code generates. `go test -update` rewrites it.
func TestSchemaIsUpToDate(t *testing.T) {
	got := builtinSchema(t)
	if *update {
		require.NoError(t, os.WriteFile("schema.json", got, 0o644))
	}
	want, err := os.ReadFile("schema.json")
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "schema.json is stale: run go test ./experiments -run TestSchemaIsUpToDate -update")
}

// compileSchema compiles schema.json with a real JSON Schema (2020-12)
// implementation.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(builtinSchema(t)))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	require.NoError(t, c.AddResource(experiments.SchemaID, doc))
	s, err := c.Compile(experiments.SchemaID)
	require.NoError(t, err, "the generated schema must compile")
	return s
}

// yamlAsJSON reads a YAML file into the values a JSON document would have.
func yamlAsJSON(data []byte) (any, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

// TestSchemaAcceptsEveryValidFile: a file Load accepts is always accepted by
// the schema (the examples, and the files that use every field).
func TestSchemaAcceptsEveryValidFile(t *testing.T) {
	s := compileSchema(t)
	files, err := filepath.Glob("examples/*.yaml")
	require.NoError(t, err)
	good, err := filepath.Glob("testdata/good/*.yaml")
	require.NoError(t, err)
	files = append(files, good...)
	require.NotEmpty(t, files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		v, err := yamlAsJSON(data)
		require.NoError(t, err, f)
		require.NoError(t, s.Validate(v), "%s is valid, so the schema must accept it", f)
	}
}

// TestSchemaRejectsBadTypeFiles: every testdata/bad/type-*.yaml has a
// mistake of shape (a field that does not exist, a wrong kind of value, a
// missing required field, a value outside an enum), which an editor must
// flag from the schema alone.
func TestSchemaRejectsBadTypeFiles(t *testing.T) {
	s := compileSchema(t)
	files, err := filepath.Glob("testdata/bad/type-*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		v, err := yamlAsJSON(data)
		if err != nil {
			continue // not even YAML: every tool rejects it
		}
		require.Error(t, s.Validate(v), "the schema must reject %s (%s)", f, strings.TrimPrefix(strings.SplitN(string(data), "\n", 2)[0], "# "))
	}
}

// TestSchemaChecksPluginParameters: with the built-in plugins' schemas, an
// editor flags a misspelled latency parameter too.
func TestSchemaChecksPluginParameters(t *testing.T) {
	s := compileSchema(t)
	data, err := os.ReadFile("testdata/good/minimal.yaml")
	require.NoError(t, err)
	bad := strings.Replace(string(data), "with: {delay: 10ms}", "with: {dealy: 10ms}", 1)
	require.NotEqual(t, string(data), bad)
	v, err := yamlAsJSON([]byte(bad))
	require.NoError(t, err)
	require.Error(t, s.Validate(v), "latency has no parameter dealy")
}
