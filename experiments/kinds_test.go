package experiments

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestProbeKindsTableMatchesTheFormat keeps the kind table, the Probe
// declaration (which the schema is made from) and ProbeKinds in step:
// a kind in one and not in the others would be accepted by the schema and
// refused by validation, or the other way round.
func TestProbeKindsTableMatchesTheFormat(t *testing.T) {
	var declared []string
	pt := reflect.TypeOf(Probe{})
	for i := range pt.NumField() {
		f := pt.Field(i)
		if f.Tag.Get("oneof") == "kind" {
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			declared = append(declared, name)
		}
	}
	var table []string
	for _, k := range probeKinds() {
		table = append(table, k.Name)
		require.NotNil(t, k.set, "kind %s says when a probe declares it", k.Name)
		require.NotNil(t, k.zero, "kind %s has an observation type for expressions", k.Name)
		require.NotNil(t, k.failed, "kind %s can say it could not observe", k.Name)
		require.NotNil(t, k.validate, "kind %s checks its settings", k.Name)
		require.NotNil(t, k.describe, "kind %s is described in the plan", k.Name)
		require.Equal(t, reflect.TypeOf(k.zero), reflect.TypeOf(k.failed("x")), "kind %s fails with its own observation type", k.Name)
	}
	require.Equal(t, declared, table, "every oneof:kind field of Probe has one table entry, in the same order")
	require.Equal(t, ProbeKinds, table, "ProbeKinds lists the table's kinds")
}
