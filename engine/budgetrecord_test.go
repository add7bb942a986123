package engine_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/reports"
)

// TestRunRecordsEveryBudgetCondition checks that the record lists every
// abortWhen condition and marks the one that stopped the run, which the
// JUnit and HTML reports show one by one.
func TestRunRecordsEveryBudgetCondition(t *testing.T) {
	w := newWorld()
	w.slowWhenFaulted = true
	faults := "    - {plugin: fake, target: link, after: 0s, for: 1h}\n"
	budget := "  budget:\n    abortWhen:\n      - svc.latency > duration(\"1h\")\n      - svc.latency > duration(\"1s\")\n  safety: {maxDuration: 2h}\n"
	rec := engine.Run(t.Context(), experiment(t, faults, budget), w.options())
	require.Equal(t, reports.Aborted, rec.Verdict, rec.Reason)
	require.Equal(t, reports.Cause("budget"), rec.Cause)
	require.Len(t, rec.Budget, 2, "every condition of the file is in the record")
	require.Equal(t, `svc.latency > duration("1h")`, rec.Budget[0].Expression)
	require.False(t, rec.Budget[0].Tripped, "the condition that did not hold is not marked")
	require.True(t, rec.Budget[1].Tripped, "the condition that stopped the run is marked")
	require.NotNil(t, rec.Budget[1].At, "with when it tripped")
	require.Contains(t, rec.Budget[1].Detail, "svc", "and the values it held on")
	requireNothingLeft(t, w)
}
