package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSchemaCommandPrintsTheCommittedSchema: editors are pointed at
// experiments/schema.json, so it must be exactly what `chaos schema` prints.
func TestSchemaCommandPrintsTheCommittedSchema(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"chaos", "schema"}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	want, err := os.ReadFile(filepath.Join("..", "..", "experiments", "schema.json"))
	require.NoError(t, err)
	require.Equal(t, string(want), stdout.String(), "experiments/schema.json is stale: go test ./experiments -run TestSchemaIsUpToDate -update")
}
