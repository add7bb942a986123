package experiments_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
)

// TestScheduleMustLetTheSteadyStateObserveEachFault: a probe every minute
// cannot judge a fault of 3 s; the file is refused at the fault's `for`,
// with the arithmetic and both ways out.
func TestScheduleMustLetTheSteadyStateObserveEachFault(t *testing.T) {
	src := strings.Replace(withSteady(`checkout.status == 200`), "every: 1s", "every: 1m", 1)
	probs := problems(t, src)
	require.Len(t, probs, 1, "one probe, one fault: one problem")
	p := probs[0]
	require.Equal(t, "spec.faults[0].for", p.Path)
	require.Equal(t, experiments.Pos{Line: 17, Col: 69}, p.Pos, "the problem points at the fault's for")
	require.Contains(t, p.Message, "probe checkout can observe fault 0 (latency on link) at most 0 times (floor(3s / every: 1m0s) = 0)")
	require.Contains(t, p.Hint, "every at most 1s, or the fault last at least 3m0s")

	// Probes the steady state does not read are not asked to.
	parseOK(t, strings.Replace(withSteady(`db.ok`), "every: 1s", "every: 1m", 1))
	// Three observations fit: accepted.
	parseOK(t, withSteady(`checkout.status == 200`))
}

// TestFaultWithoutForLastsUntilThePhaseEnds: a fault without `for` is live
// until the latest after + for; one that starts when the phase ends is live
// for no time at all, and is refused at the fault.
func TestFaultWithoutForLastsUntilThePhaseEnds(t *testing.T) {
	base := withSteady(`checkout.status == 200`)
	two := strings.Replace(base, "  faults: [{plugin: latency, target: link, with: {delay: 1ms}, for: 3s}]\n",
		"  faults:\n    - {plugin: latency, target: link, with: {delay: 1ms}, for: 10s}\n    - {plugin: latency, target: link, with: {delay: 1ms}, after: 9s}\n", 1)
	probs := problems(t, two)
	require.Len(t, probs, 1)
	require.Equal(t, "spec.faults[1]", probs[0].Path, "a fault without for is pointed at as a whole")
	require.Contains(t, probs[0].Message, "at most 1 times (floor(1s / every: 1s) = 1)")
	require.Contains(t, probs[0].Hint, "no for: live from after 9s until the fault phase ends at 10s")

	ok := strings.Replace(two, "after: 9s}", "after: 2s}", 1)
	exp := parseOK(t, ok)
	require.Equal(t, 8*1e9, float64(exp.Spec.FaultDuration(exp.Spec.Faults[1])))
}

func TestBlindAfterIsBounded(t *testing.T) {
	src := withSteady(`checkout.status == 200`) + "  budget: {abortWhen: [checkout.status >= 500], blindAfter: 0}\n"
	probs := problems(t, src)
	require.Len(t, probs, 1)
	require.Equal(t, "spec.budget.blindAfter", probs[0].Path)
	exp := parseOK(t, strings.Replace(src, "blindAfter: 0", "blindAfter: 5", 1))
	require.Equal(t, 5, exp.Spec.Budget.EffectiveBlindAfter())
	exp = parseOK(t, withSteady(`checkout.status == 200`))
	require.Equal(t, experiments.DefaultBlindAfter, exp.Spec.Budget.EffectiveBlindAfter())
}
