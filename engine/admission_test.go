package engine_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/reports"
)

// TestErrorBudgetAdmission asks a real Prometheus how much error budget is
// left: a run that may spend more than is left is refused before anything
// is prepared; one that fits is admitted and runs.
func TestErrorBudgetAdmission(t *testing.T) {
	requirePrometheus(t)
	// t_requests_total{code="200"} / 1000 stands for the SLO tooling's
	// "fraction of the error budget left": 10 → 1% left, 500 → 50% left.
	counters := startPromCounters(t, 10, 0)
	prom := startPrometheus(t, strings.TrimPrefix(counters.URL, "http://"))
	query := `sum(t_requests_total{code="200"}) / 1000`
	awaitProm(t, promProber(t, prom, query, ""), "the first scrape", func(o experiments.PrometheusObservation) bool {
		return o.OK && !o.Empty
	})

	exp := experiment(t, oneFault, fmt.Sprintf(`  budget:
    errorBudget:
      slo: 99.9%%
      window: 30d
      maxSpend: 2%%
      remaining: {url: %q, query: %q}
`, prom, query))

	w := newWorld()
	rec := engine.Run(t.Context(), exp, w.options())
	require.Equal(t, reports.Refused, rec.Verdict, rec.Reason)
	require.Equal(t, reports.Cause("error-budget"), rec.Cause, "a spent error budget is the environment saying no")
	require.Contains(t, rec.Reason, "1.00% of the error budget is left", "the refusal says how much is left")
	require.Zero(t, w.prepared+w.injected, "a refused run touches nothing")

	counters.OK.Store(500)
	awaitProm(t, promProber(t, prom, query, ""), "the new counter value", func(o experiments.PrometheusObservation) bool {
		return o.OK && o.Value == 0.5
	})
	w = newWorld()
	rec = engine.Run(t.Context(), exp, w.options())
	require.Equal(t, reports.Passed, rec.Verdict, rec.Reason)
	require.NotNil(t, rec.ErrorBudget)
	require.NotNil(t, rec.ErrorBudget.RemainingAtStart)
	require.InDelta(t, 50.0, *rec.ErrorBudget.RemainingAtStart, 0.001)

	// A query that answers nothing cannot admit anything.
	exp = experiment(t, oneFault, fmt.Sprintf(`  budget:
    errorBudget: {slo: 99.9%%, window: 30d, maxSpend: 2%%, remaining: {url: %q, query: "absent_metric_xyz"}}
`, prom))
	w = newWorld()
	rec = engine.Run(t.Context(), exp, w.options())
	require.Equal(t, reports.Refused, rec.Verdict)
	require.Equal(t, reports.Cause("error-budget-unknown"), rec.Cause)
	require.Zero(t, w.prepared+w.injected)
}
